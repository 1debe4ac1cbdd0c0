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
    /// `$NAME`, `${NAME}`, `$1`, `$@`…; unquoted expansions are split into words.
    Var { name: String, quoted: bool },
    /// `${...}` with more than a plain name (`${x:-d}`, `${!x}`, `${a[@]}`, `${x:0:2}`): the
    /// text between the braces.
    Param { expr: String, quoted: bool },
    /// `$(...)` or backticks: the inner script; unquoted output is split into words.
    Sub { script: String, quoted: bool },
    /// `<(...)` (`output` false) or `>(...)` (`output` true): the inner script.
    ProcSub { script: String, output: bool },
    /// `$((...))`, or a `((...))` command: the arithmetic text, which may hold `$(...)`.
    Arith(String),
    /// `name=(...)`: the text of an array literal.
    Array(String),
    /// A leading unquoted `~`.
    Home,
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
            Part::Sub { script: s, .. } | Part::ProcSub { script: s, .. } => Some(s.as_str()),
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
    /// Whether the body undergoes expansion (the delimiter was not quoted).
    pub heredoc_expands: bool,
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
    /// `for NAME in WORDS`: the loop variable; `words` are then the values it takes.
    pub for_var: Option<String>,
}

/// Commands joined by `|`; the first command's stdin is the script's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pipeline {
    pub commands: Vec<SimpleCommand>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Script {
    pub pipelines: Vec<Pipeline>,
    /// Shell functions defined in the script.
    pub functions: Vec<Function>,
    /// Endless loops (`while true`, `while :`, `until false`) that start background jobs.
    pub endless_background_loops: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Function {
    pub name: String,
    /// Whether the body calls the function itself.
    pub recursive: bool,
    /// What a call runs; its commands are not part of the script's own pipelines.
    pub body: Script,
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
    /// A `((` found unclosed: every later one is too, so none is tried again.
    arith_unclosed: bool,
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
            arith_unclosed: false,
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
            ('(', Some('(')) if self.arithmetic()? => return Ok(()),
            ('(', _) => "(",
            (')', _) => ")",
            _ => return Err(ParseError(format!("unexpected character {c:?}"))),
        };
        self.pos += op.len();
        self.toks.push(Tok::Op(op));
        Ok(())
    }

    /// `((...))` as a command is arithmetic; `((cmd); cmd)` is two subshells, told apart by
    /// what follows the first closing parenthesis.
    fn arithmetic(&mut self) -> Result<bool, ParseError> {
        if self.arith_unclosed {
            return Ok(false);
        }
        let start = self.pos;
        self.pos += 2;
        let inner = match self.balanced(')') {
            Ok(t) => t,
            Err(_) => {
                self.pos = start;
                self.arith_unclosed = true;
                return Ok(false);
            }
        };
        if self.peek() != Some(')') {
            self.pos = start;
            return Ok(false);
        }
        self.pos += 1;
        self.toks.push(Tok::Word(Word {
            parts: vec![Part::Arith(inner)],
        }));
        Ok(true)
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
                '(' if is_assignment_prefix(&w) => {
                    self.pos += 1;
                    let inner = self.balanced(')')?;
                    w.parts.push(Part::Array(inner));
                }
                '(' => {
                    // `name()` starts a function definition; `(` alone is a subshell.
                    break;
                }
                '<' | '>' if self.peek_at(1) == Some('(') => {
                    self.pos += 2;
                    let script = self.balanced(')')?;
                    w.parts.push(Part::ProcSub {
                        script,
                        output: c == '>',
                    });
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
                    w.parts.push(Part::Sub {
                        script: inner,
                        quoted: false,
                    });
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
                    w.parts.push(Part::Sub {
                        script: inner,
                        quoted: true,
                    });
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
                let inner = self.balanced(')')?;
                if self.peek() == Some(')') {
                    self.pos += 1;
                }
                w.parts.push(Part::Arith(inner));
            }
            Some('(') => {
                self.pos += 1;
                let inner = self.balanced(')')?;
                w.parts.push(Part::Sub {
                    script: inner,
                    quoted: in_dquote,
                });
            }
            Some('{') => {
                self.pos += 1;
                let inner = self.balanced('}')?;
                let plain = (!inner.is_empty() && inner.chars().all(is_name_char))
                    || (inner.chars().count() == 1 && "@*#?$!-".contains(inner.as_str()));
                if plain {
                    w.parts.push(Part::Var {
                        name: inner,
                        quoted: in_dquote,
                    });
                } else {
                    w.parts.push(Part::Param {
                        expr: inner,
                        quoted: in_dquote,
                    });
                }
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
                    quoted: in_dquote,
                });
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.pos += 1;
                w.parts.push(Part::Var {
                    name: c.to_string(),
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
/// Function bodies nested deeper than this are read as plain commands.
const MAX_FUNCTION_NESTING: usize = 16;

/// Parse a shell script into pipelines of simple commands.
pub fn parse(src: &str) -> Result<Script, ParseError> {
    let (toks, heredocs) = Lexer::new(src).run()?;
    Ok(parse_range(&toks, 0, toks.len(), &heredocs, 0))
}

/// The index of the token closing the group opened at `open_at`, if any.
fn matching_close(toks: &[Tok], open_at: usize, end: usize) -> Option<usize> {
    let (open, close) = match toks.get(open_at) {
        Some(Tok::Op("{")) => ("{", "}"),
        Some(Tok::Op("(")) => ("(", ")"),
        _ => return None,
    };
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().take(end).skip(open_at) {
        match t {
            Tok::Op(o) if *o == open => depth += 1,
            Tok::Op(o) if *o == close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

struct Builder {
    script: Script,
    pipeline: Pipeline,
    cmd: SimpleCommand,
}

impl Builder {
    fn flush_cmd(&mut self) {
        let c = &self.cmd;
        if !c.words.is_empty() || !c.redirects.is_empty() || !c.assigns.is_empty() {
            self.pipeline.commands.push(std::mem::take(&mut self.cmd));
        }
    }
    fn flush_pipeline(&mut self) {
        self.flush_cmd();
        if !self.pipeline.commands.is_empty() {
            self.script
                .pipelines
                .push(std::mem::take(&mut self.pipeline));
        }
    }
}

/// A function defined at `i` (`name ( ) BODY`, or `function name [( )] BODY`): its name,
/// where the body starts, and where parsing goes on.
fn function_at(toks: &[Tok], i: usize, end: usize) -> Option<(String, usize)> {
    let word = |k: usize| match toks.get(k) {
        Some(Tok::Word(w)) if k < end => w.literal(),
        _ => None,
    };
    let parens = |k: usize| {
        matches!(toks.get(k), Some(Tok::Op("("))) && matches!(toks.get(k + 1), Some(Tok::Op(")")))
    };
    let name = word(i)?;
    if parens(i + 1) {
        return Some((name, i + 3));
    }
    if name == "function" {
        let n = word(i + 1)?;
        let j = if parens(i + 2) { i + 4 } else { i + 2 };
        return Some((n, j));
    }
    None
}

fn parse_range(
    toks: &[Tok],
    start: usize,
    end: usize,
    heredocs: &[(usize, String)],
    nesting: usize,
) -> Script {
    let mut b = Builder {
        script: Script::default(),
        pipeline: Pipeline::default(),
        cmd: SimpleCommand::default(),
    };
    let mut skip_until_sep = false;
    let mut i = start;
    while i < end {
        match &toks[i] {
            Tok::Word(w) => {
                let at_start = b.cmd.words.is_empty() && b.cmd.assigns.is_empty();
                if at_start && !skip_until_sep {
                    if let Some((name, mut j)) = function_at(toks, i, end) {
                        while matches!(toks.get(j), Some(Tok::Op(";"))) && j < end {
                            j += 1;
                        }
                        let recursive = function_calls_itself(&toks[j.min(end)..end], &name);
                        match matching_close(toks, j, end) {
                            Some(k) if nesting < MAX_FUNCTION_NESTING => {
                                let body = parse_range(toks, j + 1, k, heredocs, nesting + 1);
                                b.script.functions.push(Function {
                                    name,
                                    recursive,
                                    body,
                                });
                                i = k + 1;
                            }
                            _ => {
                                // A body that is not a group: read its commands in place.
                                b.script.functions.push(Function {
                                    name,
                                    recursive,
                                    body: Script::default(),
                                });
                                i = j;
                            }
                        }
                        continue;
                    }
                }
                if skip_until_sep {
                    i += 1;
                    continue;
                }
                let lit = w.literal();
                if at_start {
                    if let Some(l) = lit.as_deref() {
                        if matches!(l, "while" | "until")
                            && endless_background_loop(toks, i, end, l)
                        {
                            b.script.endless_background_loops += 1;
                        }
                        if KEYWORDS_SKIP.contains(&l) || KEYWORDS_END.contains(&l) {
                            i += 1;
                            continue;
                        }
                        if matches!(l, "for" | "select") {
                            i = for_loop(toks, i, end, &mut b);
                            continue;
                        }
                        if matches!(l, "case" | "in") {
                            skip_until_sep = true;
                            i += 1;
                            continue;
                        }
                    }
                }
                if b.cmd.words.is_empty() {
                    if let Some((name, value)) = split_assignment(w) {
                        b.cmd.assigns.push((name, value));
                        i += 1;
                        continue;
                    }
                }
                b.cmd.words.push(w.clone());
            }
            Tok::Redir(op, target) => {
                if let Some(t) = target {
                    let heredoc = heredocs
                        .iter()
                        .find(|(idx, _)| *idx == i)
                        .map(|(_, body)| body.clone());
                    let heredoc_expands = !t
                        .parts
                        .iter()
                        .any(|p| matches!(p, Part::Lit { quoted: true, .. }));
                    b.cmd.redirects.push(Redirect {
                        op: op.clone(),
                        target: t.clone(),
                        heredoc,
                        heredoc_expands,
                    });
                }
            }
            Tok::Op(op) => match *op {
                "|" | "|&" => b.flush_cmd(),
                "&" => {
                    b.cmd.background = true;
                    b.flush_pipeline();
                    skip_until_sep = false;
                }
                _ => {
                    b.flush_pipeline();
                    skip_until_sep = false;
                }
            },
        }
        i += 1;
    }
    b.flush_pipeline();
    b.script
}

/// `for NAME [in WORDS]`: a pseudo-command binding NAME to WORDS (to `"$@"` without `in`).
/// Returns where parsing goes on. `for ((...))` is skipped up to its separator.
fn for_loop(toks: &[Tok], i: usize, end: usize, b: &mut Builder) -> usize {
    let name = match toks.get(i + 1) {
        Some(Tok::Word(w)) if i + 1 < end => w
            .literal()
            .filter(|n| n.starts_with(is_name_start) && n.chars().all(is_name_char)),
        _ => None,
    };
    let Some(name) = name else {
        let mut j = i + 1;
        while j < end && !matches!(toks[j], Tok::Op(_)) {
            j += 1;
        }
        return j;
    };
    let mut j = i + 2;
    let mut words = vec![];
    if matches!(toks.get(j), Some(Tok::Word(w)) if j < end && w.literal().as_deref() == Some("in"))
    {
        j += 1;
        while j < end {
            match &toks[j] {
                Tok::Word(w) if w.literal().as_deref() != Some("do") => words.push(w.clone()),
                _ => break,
            }
            j += 1;
        }
    } else {
        words.push(Word {
            parts: vec![Part::Var {
                name: "@".into(),
                quoted: true,
            }],
        });
    }
    b.flush_pipeline();
    b.cmd = SimpleCommand {
        words,
        for_var: Some(name),
        ..SimpleCommand::default()
    };
    b.flush_pipeline();
    j
}

/// Whether the `while`/`until` loop at `i` never ends and starts jobs in the background.
fn endless_background_loop(toks: &[Tok], i: usize, end: usize, kw: &str) -> bool {
    let lit = |k: usize| match toks.get(k) {
        Some(Tok::Word(w)) if k < end => w.literal(),
        _ => None,
    };
    let Some(do_at) = (i + 1..end).find(|&k| lit(k).as_deref() == Some("do")) else {
        return false;
    };
    let cond: Vec<String> = (i + 1..do_at).filter_map(lit).collect();
    let endless = match kw {
        "while" => {
            matches!(cond.as_slice(), [c] if c == "true" || c == ":")
                || matches!(
                    cond.iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .as_slice(),
                    ["[", "1", "]"]
                )
        }
        _ => matches!(cond.as_slice(), [c] if c == "false"),
    };
    if !endless {
        return false;
    }
    let mut depth = 0usize;
    for (k, tok) in toks.iter().enumerate().take(end).skip(do_at) {
        match (lit(k).as_deref(), tok) {
            (Some("do"), _) => depth += 1,
            (Some("done"), _) => {
                depth -= 1;
                if depth == 0 {
                    return false;
                }
            }
            (_, Tok::Op("&")) => return true,
            _ => {}
        }
    }
    false
}

/// Whether the function body that starts at `toks` calls `name`.
fn function_calls_itself(toks: &[Tok], name: &str) -> bool {
    let Some(close) = matching_close(toks, 0, toks.len()) else {
        return false;
    };
    toks[..close]
        .iter()
        .any(|t| matches!(t, Tok::Word(w) if w.literal().as_deref() == Some(name)))
}

/// Whether `w` so far is `NAME=` or `NAME+=`, so that a `(` opens an array literal.
fn is_assignment_prefix(w: &Word) -> bool {
    let [Part::Lit {
        text,
        quoted: false,
    }] = w.parts.as_slice()
    else {
        return false;
    };
    let Some(name) = text.strip_suffix("+=").or_else(|| text.strip_suffix('=')) else {
        return false;
    };
    name.starts_with(is_name_start) && name.chars().all(is_name_char)
}

/// Read the body of an unquoted here-document (or any text) the way a shell expands it:
/// as if in double quotes, with `"` an ordinary character.
pub fn expanding_text(body: &str) -> Result<Word, ParseError> {
    let mut lx = Lexer::new(body);
    let mut w = Word::default();
    while let Some(c) = lx.peek() {
        match c {
            '\\' => {
                lx.pos += 1;
                match lx.peek() {
                    Some(n @ ('$' | '`' | '\\')) => {
                        lx.pos += 1;
                        w.push_lit(n, true);
                    }
                    Some('\n') => lx.pos += 1,
                    _ => w.push_lit('\\', true),
                }
            }
            '`' => {
                lx.pos += 1;
                let mut inner = String::new();
                while let Some(c) = lx.peek() {
                    lx.pos += 1;
                    if c == '`' {
                        break;
                    }
                    inner.push(c);
                }
                w.parts.push(Part::Sub {
                    script: inner,
                    quoted: true,
                });
            }
            '$' => lx.dollar(&mut w, true)?,
            c => {
                lx.pos += 1;
                w.push_lit(c, true);
            }
        }
    }
    Ok(w)
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
        assert_eq!(s.functions.len(), 1);
        assert_eq!(s.functions[0].name, ":");
        assert!(s.functions[0].recursive);
        // The body runs when called, not where it is defined.
        assert_eq!(s.pipelines.len(), 1);
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
