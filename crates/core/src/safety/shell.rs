//! A small POSIX-shell reader: enough of the grammar to find every command a script would
//! run, with quoting, escapes, expansions and substitutions resolved the way the shell
//! resolves them. It never executes anything; what it cannot know statically (a variable
//! from the environment, the output of a command) stays marked as dynamic.

use std::fmt;

/// One piece of a shell word before expansion.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Literal text; `quoted` is false for bare text, where `*`, `?` and `[` are globs.
    Lit { text: String, quoted: bool },
    /// `$NAME`, `${NAME}` or `${NAME...}` with a modifier (then `plain` is false);
    /// unquoted expansions are split into words on whitespace.
    Var {
        name: String,
        plain: bool,
        quoted: bool,
    },
    /// `$(...)` or backticks: the inner script.
    Sub(String),
    /// `<(...)` or `>(...)`: the inner script.
    ProcSub(String),
    /// A leading unquoted `~`.
    Home,
    /// `$((...))` and anything else whose value is only known at run time.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Word {
    pub parts: Vec<Part>,
}

impl Word {
    fn push_lit(&mut self, c: char, quoted: bool) {
        if let Some(Part::Lit { text, quoted: q }) = self.parts.last_mut() {
            if *q == quoted {
                text.push(c);
                return;
            }
        }
        self.parts.push(Part::Lit {
            text: c.to_string(),
            quoted,
        });
    }

    /// The literal text when the word has no expansion at all.
    pub fn literal(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Lit { text, .. } => s.push_str(text),
                _ => return None,
            }
        }
        Some(s)
    }

    /// The scripts this word runs while being expanded (`$(...)`, backticks, `<(...)`).
    pub fn substitutions(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Sub(s) | Part::ProcSub(s) => Some(s.as_str()),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    /// `>`, `>>`, `<`, `<<`, `<<<`, `&>`, `>|`, `<>`, `>&`, `<&` (fd numbers dropped).
    pub op: String,
    pub target: Word,
    /// The body of a here-document.
    pub heredoc: Option<String>,
}

impl Redirect {
    pub fn writes(&self) -> bool {
        matches!(self.op.as_str(), ">" | ">>" | ">|" | "&>" | "&>>" | "<>")
    }
    pub fn truncates(&self) -> bool {
        matches!(self.op.as_str(), ">" | ">|" | "&>")
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimpleCommand {
    /// `NAME=value` prefixes.
    pub assigns: Vec<(String, Word)>,
    pub words: Vec<Word>,
    pub redirects: Vec<Redirect>,
    /// Run in the background (`&`).
    pub background: bool,
}

/// Commands joined by `|`; the first command's stdin is the script's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pipeline {
    pub commands: Vec<SimpleCommand>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Script {
    pub pipelines: Vec<Pipeline>,
    /// Shell functions defined in the script, with whether the body calls the function itself.
    pub functions: Vec<(String, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Word),
    /// `;`, `&`, `&&`, `||`, `|`, `|&`, `(`, `)`, `{`, `}`, newline as `;`.
    Op(&'static str),
    Redir(String, Option<Word>),
}

/// Tokens, and here-document bodies by the index of their redirection token.
type Lexed = (Vec<Tok>, Vec<(usize, String)>);

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    toks: Vec<Tok>,
    pending_heredocs: Vec<usize>,
    heredocs: Vec<(usize, String)>,
    _src: &'a str,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            chars: src.chars().collect(),
            pos: 0,
            toks: vec![],
            pending_heredocs: vec![],
            heredocs: vec![],
            _src: src,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    fn run(mut self) -> Result<Lexed, ParseError> {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' => self.pos += 1,
                '\n' => {
                    self.pos += 1;
                    self.toks.push(Tok::Op(";"));
                    self.read_heredoc_bodies()?;
                }
                '#' => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                '\\' if self.peek_at(1) == Some('\n') => self.pos += 2,
                ';' | '&' | '|' | '(' | ')' => self.operator()?,
                '<' | '>' => {
                    if (c == '<' || c == '>') && self.peek_at(1) == Some('(') {
                        let w = self.word()?;
                        self.toks.push(Tok::Word(w));
                    } else {
                        self.redirect()?;
                    }
                }
                _ => {
                    // An fd number glued to a redirection (`2>`) is not a word.
                    let mut n = 0;
                    while self.peek_at(n).is_some_and(|c| c.is_ascii_digit()) {
                        n += 1;
                    }
                    if n > 0 && matches!(self.peek_at(n), Some('<') | Some('>')) {
                        self.pos += n;
                        self.redirect()?;
                        continue;
                    }
                    let w = self.word()?;
                    match w.literal().as_deref() {
                        Some("{") => self.toks.push(Tok::Op("{")),
                        Some("}") => self.toks.push(Tok::Op("}")),
                        _ => self.toks.push(Tok::Word(w)),
                    }
                }
            }
        }
        if !self.pending_heredocs.is_empty() {
            // A here-document at the very end without a newline has an empty body.
            for i in std::mem::take(&mut self.pending_heredocs) {
                self.heredocs.push((i, String::new()));
            }
        }
        Ok((self.toks, self.heredocs))
    }

    fn operator(&mut self) -> Result<(), ParseError> {
        let c = self.peek().unwrap_or(';');
        let n = self.peek_at(1);
        let op: &'static str = match (c, n) {
            ('&', Some('&')) => "&&",
            ('|', Some('|')) => "||",
            ('|', Some('&')) => "|&",
            (';', Some(';')) => ";;",
            ('&', Some('>')) => {
                return self.redirect();
            }
            (';', _) => ";",
            ('&', _) => "&",
            ('|', _) => "|",
            ('(', _) => "(",
            (')', _) => ")",
            _ => return Err(ParseError(format!("unexpected character {c:?}"))),
        };
        self.pos += op.len();
        self.toks.push(Tok::Op(op));
        Ok(())
    }

    fn redirect(&mut self) -> Result<(), ParseError> {
        const OPS: [&str; 13] = [
            "&>>", "<<<", "<<-", "&>", ">>", ">|", ">&", "<&", "<<", "<>", ">", "<", "&",
        ];
        let op = OPS
            .iter()
            .find(|o| self.starts_with(o))
            .copied()
            .ok_or_else(|| ParseError("bad redirection".into()))?;
        self.pos += op.len();
        while matches!(self.peek(), Some(' ') | Some('\t')) {
            self.pos += 1;
        }
        // `>&2`, `2>&1`, `<&-`: duplicating a descriptor names no file.
        if (op == ">&" || op == "<&") && self.peek().is_some_and(|c| c.is_ascii_digit() || c == '-')
        {
            while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '-') {
                self.pos += 1;
            }
            self.toks.push(Tok::Redir("dup".into(), None));
            return Ok(());
        }
        match self.peek() {
            None | Some('\n') | Some(';') | Some('|') | Some('&') | Some(')') => {
                return Err(ParseError(format!("redirection {op} without a target")));
            }
            _ => {}
        }
        let target = self.word()?;
        let op = match op {
            ">&" => "&>",
            "<<-" => "<<",
            o => o,
        };
        if op == "<<" {
            self.pending_heredocs.push(self.toks.len());
        }
        self.toks.push(Tok::Redir(op.to_string(), Some(target)));
        Ok(())
    }

    fn read_heredoc_bodies(&mut self) -> Result<(), ParseError> {
        for idx in std::mem::take(&mut self.pending_heredocs) {
            let delim = match &self.toks[idx] {
                Tok::Redir(_, Some(w)) => w
                    .parts
                    .iter()
                    .map(|p| match p {
                        Part::Lit { text, .. } => text.clone(),
                        _ => String::new(),
                    })
                    .collect::<String>(),
                _ => String::new(),
            };
            let mut body = String::new();
            loop {
                if self.pos >= self.chars.len() {
                    break;
                }
                let start = self.pos;
                while self.peek().is_some_and(|c| c != '\n') {
                    self.pos += 1;
                }
                let line: String = self.chars[start..self.pos].iter().collect();
                if self.peek() == Some('\n') {
                    self.pos += 1;
                }
                if line.trim_start_matches('\t') == delim {
                    break;
                }
                body.push_str(&line);
                body.push('\n');
            }
            self.heredocs.push((idx, body));
        }
        Ok(())
    }

    fn word(&mut self) -> Result<Word, ParseError> {
        let mut w = Word::default();
        let start = self.pos;
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' | '\r' | ';' | '&' | '|' | ')' => break,
                '(' => {
                    // `name()` starts a function definition; `(` alone is a subshell.
                    break;
                }
                '<' | '>' if self.peek_at(1) == Some('(') => {
                    self.pos += 2;
                    let inner = self.balanced(')')?;
                    w.parts.push(Part::ProcSub(inner));
                }
                '<' | '>' => break,
                '~' if self.pos == start => {
                    self.pos += 1;
                    if matches!(
                        self.peek(),
                        None | Some('/') | Some(' ') | Some('\t') | Some('\n') | Some(';')
                    ) {
                        w.parts.push(Part::Home);
                    } else {
                        // `~user`: another user's home.
                        w.parts.push(Part::Home);
                        while self.peek().is_some_and(|c| is_name_char(c) || c == '-') {
                            self.pos += 1;
                        }
                    }
                }
                '\\' => {
                    self.pos += 1;
                    match self.peek() {
                        Some('\n') => self.pos += 1,
                        Some(c) => {
                            self.pos += 1;
                            w.push_lit(c, true);
                        }
                        None => {}
                    }
                }
                '\'' => {
                    self.pos += 1;
                    let mut closed = false;
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == '\'' {
                            closed = true;
                            break;
                        }
                        w.push_lit(c, true);
                    }
                    if !closed {
                        return Err(ParseError("unterminated single quote".into()));
                    }
                    // `''` still makes a (possibly empty) quoted word.
                    if w.parts.is_empty() {
                        w.parts.push(Part::Lit {
                            text: String::new(),
                            quoted: true,
                        });
                    }
                }
                '"' => {
                    self.pos += 1;
                    self.double_quoted(&mut w)?;
                }
                '`' => {
                    self.pos += 1;
                    let mut inner = String::new();
                    let mut closed = false;
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == '\\' {
                            if let Some(n) = self.peek() {
                                self.pos += 1;
                                if !matches!(n, '`' | '\\' | '$') {
                                    inner.push('\\');
                                }
                                inner.push(n);
                            }
                            continue;
                        }
                        if c == '`' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(ParseError("unterminated backquote".into()));
                    }
                    w.parts.push(Part::Sub(inner));
                }
                '$' => self.dollar(&mut w, false)?,
                c => {
                    self.pos += 1;
                    w.push_lit(c, false);
                }
            }
        }
        Ok(w)
    }

    fn double_quoted(&mut self, w: &mut Word) -> Result<(), ParseError> {
        let mut any = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(ParseError("unterminated double quote".into()));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    break;
                }
                '\\' => {
                    self.pos += 1;
                    match self.peek() {
                        Some(n @ ('$' | '`' | '"' | '\\')) => {
                            self.pos += 1;
                            w.push_lit(n, true);
                        }
                        Some('\n') => self.pos += 1,
                        _ => w.push_lit('\\', true),
                    }
                }
                '`' => {
                    self.pos += 1;
                    let mut inner = String::new();
                    let mut closed = false;
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == '`' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(ParseError("unterminated backquote".into()));
                    }
                    w.parts.push(Part::Sub(inner));
                }
                '$' => self.dollar(w, true)?,
                c => {
                    self.pos += 1;
                    w.push_lit(c, true);
                }
            }
            any = true;
        }
        if !any {
            w.parts.push(Part::Lit {
                text: String::new(),
                quoted: true,
            });
        }
        Ok(())
    }

    fn dollar(&mut self, w: &mut Word, in_dquote: bool) -> Result<(), ParseError> {
        self.pos += 1; // `$`
        match self.peek() {
            Some('(') if self.peek_at(1) == Some('(') => {
                self.pos += 2;
                self.balanced(')')?;
                if self.peek() == Some(')') {
                    self.pos += 1;
                }
                w.parts.push(Part::Unknown);
            }
            Some('(') => {
                self.pos += 1;
                let inner = self.balanced(')')?;
                w.parts.push(Part::Sub(inner));
            }
            Some('{') => {
                self.pos += 1;
                let inner = self.balanced('}')?;
                let name: String = inner.chars().take_while(|c| is_name_char(*c)).collect();
                let plain = !name.is_empty() && name.len() == inner.len();
                // `${x:-$(cmd)}` and friends still run what is inside.
                if let Some(i) = inner.find("$(") {
                    w.parts
                        .push(Part::Sub(inner[i + 2..].trim_end_matches(')').into()));
                }
                w.parts.push(Part::Var {
                    name,
                    plain,
                    quoted: in_dquote,
                });
            }
            Some('\'') if !in_dquote => {
                self.pos += 1;
                let s = self.ansi_c()?;
                for c in s.chars() {
                    w.push_lit(c, true);
                }
                if s.is_empty() {
                    w.parts.push(Part::Lit {
                        text: String::new(),
                        quoted: true,
                    });
                }
            }
            Some('"') if !in_dquote => {
                self.pos += 1;
                self.double_quoted(w)?;
            }
            Some(c) if is_name_start(c) => {
                let mut name = String::new();
                while self.peek().is_some_and(is_name_char) {
                    name.push(self.peek().unwrap_or('_'));
                    self.pos += 1;
                }
                w.parts.push(Part::Var {
                    name,
                    plain: true,
                    quoted: in_dquote,
                });
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.pos += 1;
                w.parts.push(Part::Var {
                    name: c.to_string(),
                    plain: true,
                    quoted: in_dquote,
                });
            }
            _ => w.push_lit('$', in_dquote),
        }
        Ok(())
    }

    /// `$'...'`: ANSI-C quoting, a favourite way to spell a command without its letters.
    fn ansi_c(&mut self) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(ParseError("unterminated $'...' quote".into()));
            };
            self.pos += 1;
            match c {
                '\'' => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek() else { continue };
                    self.pos += 1;
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'a' => out.push('\x07'),
                        'b' => out.push('\x08'),
                        'e' | 'E' => out.push('\x1b'),
                        'f' => out.push('\x0c'),
                        'v' => out.push('\x0b'),
                        'x' => {
                            let v = self.radix_digits(16, 2);
                            if let Some(ch) = v.and_then(char::from_u32) {
                                out.push(ch)
                            }
                        }
                        'u' | 'U' => {
                            let v = self.radix_digits(16, if e == 'u' { 4 } else { 8 });
                            if let Some(ch) = v.and_then(char::from_u32) {
                                out.push(ch)
                            }
                        }
                        '0'..='7' => {
                            self.pos -= 1;
                            let v = self.radix_digits(8, 3);
                            if let Some(ch) = v.and_then(char::from_u32) {
                                out.push(ch)
                            }
                        }
                        o => out.push(o),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn radix_digits(&mut self, radix: u32, max: usize) -> Option<u32> {
        let mut v: Option<u32> = None;
        for _ in 0..max {
            match self.peek().and_then(|c| c.to_digit(radix)) {
                Some(d) => {
                    v = Some(v.unwrap_or(0) * radix + d);
                    self.pos += 1;
                }
                None => break,
            }
        }
        v
    }

    /// Text up to the matching `close`, honouring nesting and quotes; consumes the closer.
    fn balanced(&mut self, close: char) -> Result<String, ParseError> {
        let open = if close == ')' { '(' } else { '{' };
        let mut depth = 1usize;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '\\' => {
                    out.push(c);
                    if let Some(n) = self.peek() {
                        self.pos += 1;
                        out.push(n);
                    }
                }
                '\'' => {
                    out.push(c);
                    while let Some(n) = self.peek() {
                        self.pos += 1;
                        out.push(n);
                        if n == '\'' {
                            break;
                        }
                    }
                }
                '"' => {
                    out.push(c);
                    while let Some(n) = self.peek() {
                        self.pos += 1;
                        out.push(n);
                        if n == '\\' {
                            if let Some(m) = self.peek() {
                                self.pos += 1;
                                out.push(m);
                            }
                        } else if n == '"' {
                            break;
                        }
                    }
                }
                c if c == open => {
                    depth += 1;
                    out.push(c);
                }
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        Err(ParseError(format!("missing closing {close:?}")))
    }
}

const KEYWORDS_SKIP: [&str; 9] = [
    "if", "then", "else", "elif", "do", "while", "until", "!", "time",
];
const KEYWORDS_END: [&str; 3] = ["fi", "done", "esac"];

/// Parse a shell script into pipelines of simple commands.
pub fn parse(src: &str) -> Result<Script, ParseError> {
    let (toks, heredocs) = Lexer::new(src).run()?;
    let mut script = Script::default();
    let mut pipeline = Pipeline::default();
    let mut cmd = SimpleCommand::default();
    let mut skip_until_sep = false;

    fn flush_cmd(cmd: &mut SimpleCommand, pipeline: &mut Pipeline) {
        if !cmd.words.is_empty() || !cmd.redirects.is_empty() || !cmd.assigns.is_empty() {
            pipeline.commands.push(std::mem::take(cmd));
        }
    }
    fn flush_pipeline(pipeline: &mut Pipeline, script: &mut Script) {
        if !pipeline.commands.is_empty() {
            script.pipelines.push(std::mem::take(pipeline));
        }
    }

    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Word(w) => {
                // `name ( )` defines a function.
                if cmd.words.is_empty()
                    && matches!(toks.get(i + 1), Some(Tok::Op("(")))
                    && matches!(toks.get(i + 2), Some(Tok::Op(")")))
                {
                    let name = w.literal().unwrap_or_default();
                    let recursive = function_calls_itself(&toks[i + 3..], &name);
                    script.functions.push((name, recursive));
                    i += 3;
                    continue;
                }
                if skip_until_sep {
                    i += 1;
                    continue;
                }
                let lit = w.literal();
                if cmd.words.is_empty() && cmd.assigns.is_empty() {
                    if let Some(l) = lit.as_deref() {
                        if KEYWORDS_SKIP.contains(&l) {
                            i += 1;
                            continue;
                        }
                        if KEYWORDS_END.contains(&l) {
                            i += 1;
                            continue;
                        }
                        if matches!(l, "for" | "select" | "case" | "in") {
                            skip_until_sep = true;
                            i += 1;
                            continue;
                        }
                        if l == "function" {
                            if let Some(Tok::Word(n)) = toks.get(i + 1) {
                                let name = n.literal().unwrap_or_default();
                                let mut j = i + 2;
                                if matches!(toks.get(j), Some(Tok::Op("(")))
                                    && matches!(toks.get(j + 1), Some(Tok::Op(")")))
                                {
                                    j += 2;
                                }
                                let recursive = function_calls_itself(&toks[j..], &name);
                                script.functions.push((name, recursive));
                                i = j;
                                continue;
                            }
                        }
                    }
                }
                if cmd.words.is_empty() {
                    if let Some((name, value)) = split_assignment(w) {
                        cmd.assigns.push((name, value));
                        i += 1;
                        continue;
                    }
                }
                cmd.words.push(w.clone());
            }
            Tok::Redir(op, target) => {
                if let Some(t) = target {
                    let heredoc = heredocs
                        .iter()
                        .find(|(idx, _)| *idx == i)
                        .map(|(_, b)| b.clone());
                    cmd.redirects.push(Redirect {
                        op: op.clone(),
                        target: t.clone(),
                        heredoc,
                    });
                }
            }
            Tok::Op(op) => match *op {
                "|" | "|&" => flush_cmd(&mut cmd, &mut pipeline),
                "&" => {
                    cmd.background = true;
                    flush_cmd(&mut cmd, &mut pipeline);
                    flush_pipeline(&mut pipeline, &mut script);
                    skip_until_sep = false;
                }
                _ => {
                    flush_cmd(&mut cmd, &mut pipeline);
                    flush_pipeline(&mut pipeline, &mut script);
                    if matches!(*op, ";" | ";;" | "&&" | "||" | "{" | "}" | ")" | "(") {
                        skip_until_sep = false;
                    }
                }
            },
        }
        i += 1;
    }
    flush_cmd(&mut cmd, &mut pipeline);
    flush_pipeline(&mut pipeline, &mut script);
    Ok(script)
}

/// Whether the function body that starts at `toks` calls `name`.
fn function_calls_itself(toks: &[Tok], name: &str) -> bool {
    let (open, close) = match toks.first() {
        Some(Tok::Op("{")) => ("{", "}"),
        Some(Tok::Op("(")) => ("(", ")"),
        _ => return false,
    };
    let mut depth = 0;
    for t in toks {
        match t {
            Tok::Op(o) if *o == open => depth += 1,
            Tok::Op(o) if *o == close => {
                depth -= 1;
                if depth == 0 {
                    return false;
                }
            }
            Tok::Word(w) if w.literal().as_deref() == Some(name) => return true,
            _ => {}
        }
    }
    false
}

fn split_assignment(w: &Word) -> Option<(String, Word)> {
    let Some(Part::Lit {
        text,
        quoted: false,
    }) = w.parts.first()
    else {
        return None;
    };
    let eq = text.find('=')?;
    let name = &text[..eq];
    if name.is_empty() || !name.starts_with(is_name_start) || !name.chars().all(is_name_char) {
        return None;
    }
    let mut value = Word::default();
    let rest = &text[eq + 1..];
    if !rest.is_empty() {
        value.parts.push(Part::Lit {
            text: rest.to_string(),
            quoted: false,
        });
    }
    value.parts.extend(w.parts[1..].iter().cloned());
    Some((name.to_string(), value))
}

/// Split a string into words the way `sh` would, for `env -S` and similar (no expansions).
pub fn split_words(s: &str) -> Result<Vec<Word>, ParseError> {
    let script = parse(s)?;
    Ok(script
        .pipelines
        .into_iter()
        .flat_map(|p| p.commands)
        .flat_map(|c| c.words)
        .collect())
}

/// Quote one argument for display so that a shell would read it back unchanged.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Join an argv for display.
pub fn join(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(src: &str) -> Vec<Vec<String>> {
        parse(src)
            .unwrap()
            .pipelines
            .iter()
            .flat_map(|p| &p.commands)
            .map(|c| {
                c.words
                    .iter()
                    .map(|w| w.literal().unwrap_or("?".into()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn quoting_is_resolved() {
        assert_eq!(lits(r#"r''m -rf "/""#), vec![vec!["rm", "-rf", "/"]]);
        assert_eq!(lits(r"\rm -rf /"), vec![vec!["rm", "-rf", "/"]]);
        assert_eq!(lits(r"$'\x72\x6d' -rf /"), vec![vec!["rm", "-rf", "/"]]);
        assert_eq!(
            lits("echo a;ls|wc"),
            vec![vec!["echo", "a"], vec!["ls"], vec!["wc"]]
        );
    }

    #[test]
    fn fork_bomb_is_a_recursive_function() {
        let s = parse(":(){ :|:& };:").unwrap();
        assert_eq!(s.functions, vec![(":".to_string(), true)]);
    }

    #[test]
    fn heredoc_body_is_kept() {
        let s = parse("bash <<EOF\nrm -rf /\nEOF\necho done").unwrap();
        let c = &s.pipelines[0].commands[0];
        assert_eq!(c.redirects[0].heredoc.as_deref(), Some("rm -rf /\n"));
        assert_eq!(s.pipelines.len(), 2);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert!(parse("echo 'oops").is_err());
        assert!(parse("echo $(ls").is_err());
    }
}
