//! The assessment never panics and always comes back, whatever it is given: random bytes,
//! random shell-looking token soup, deep nesting, and inputs built to blow up.

use pipeguard_safety::{assess, assess_script};
use pipeguard_taxonomy::Risk;

/// xorshift64*: a small deterministic generator, so a failure can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "rm",
    "-rf",
    "/",
    " ",
    " ",
    "\n",
    ";",
    "|",
    "||",
    "&&",
    "&",
    "(",
    ")",
    "((",
    "))",
    "{",
    "}",
    "$(",
    "`",
    "${",
    "${!",
    ":-",
    "//",
    "#",
    "%",
    "[@]",
    "'",
    "\"",
    "\\",
    "$'\\x7",
    "<<",
    "EOF",
    "<<<",
    "<(",
    ">(",
    ">",
    "<",
    "2>&1",
    "for",
    "in",
    "do",
    "done",
    "if",
    "then",
    "fi",
    "case",
    "esac",
    "f()",
    "function",
    "x=",
    "a=(",
    "$x",
    "$@",
    "$1",
    "eval",
    "sh",
    "-c",
    "bash",
    "xargs",
    "find",
    "-exec",
    "{}",
    "\\;",
    "+",
    "sudo",
    "env",
    "kubectl",
    "exec",
    "--",
    "docker",
    "run",
    "ssh",
    "host",
    "base64",
    "-d",
    "printf",
    "\\x72",
    "echo",
    "cm0gLXJmIC8=",
    "xxd",
    "-r",
    "-p",
    "tr",
    "rev",
    "sed",
    "s/a/b/",
    "python3",
    "os.system(",
    "psql",
    "DROP",
    "TABLE",
    "/*",
    "*/",
    "--",
    "redis-cli",
    "FLUSHALL",
    "alias",
    "read",
    "set",
    "--",
    "*",
    "?",
    "[",
    "]",
    "~",
    "=",
    ",",
    ":",
    "!",
    "\u{1}",
    "\u{2}",
    "\u{3}",
    "é",
    "日本",
    "\0",
];

fn soup(r: &mut Rng) -> String {
    let n = r.below(40);
    (0..n).map(|_| TOKENS[r.below(TOKENS.len())]).collect()
}

fn bytes(r: &mut Rng) -> String {
    let n = r.below(200);
    let b: Vec<u8> = (0..n).map(|_| (r.next() & 0xff) as u8).collect();
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn random_bytes_and_token_soup_never_panic() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        for s in [bytes(&mut r), soup(&mut r)] {
            let a = assess_script(&s);
            assert!(!a.reason.is_empty(), "{s:?}");
            let _ = assess(std::slice::from_ref(&s));
            let words: Vec<String> = s.split(' ').map(String::from).collect();
            let _ = assess(&words);
        }
    }
}

#[test]
fn deep_nesting_never_panics() {
    let n = 5_000;
    let inputs = [
        "$(".repeat(n),
        format!("{}echo{}", "$(".repeat(n), ")".repeat(n)),
        "(".repeat(n),
        format!("{}rm -rf /{}", "(".repeat(n), ")".repeat(n)),
        "{ ".repeat(n),
        "${".repeat(n),
        format!("echo {}x{}", "${a:-".repeat(n), "}".repeat(n)),
        "`".repeat(n),
        "a|".repeat(n),
        "sudo ".repeat(n) + "rm -rf /",
        "eval ".repeat(n) + "'rm -rf /'",
        format!("{}rm -rf /{}", "sh -c '".repeat(50), "'".repeat(50)),
        "f(){ ".repeat(2000) + &"}".repeat(2000),
        format!("cat <<EOF\n{}\nEOF", "$(".repeat(n)),
        "x=a;".to_string() + &"x=$x$x;".repeat(64) + "echo $x",
        "for a in 1 2 3 4 5 6 7 8; do for b in 1 2 3 4 5 6 7 8; do for c in 1 2 3 4 5 6 7 8; do for d in 1 2 3 4 5 6 7 8; do echo $a$b$c$d; done; done; done; done".to_string(),
        (1..40).map(|i| format!("f{i}() {{ f{} ; f{} ; }}; ", i + 1, i + 1)).collect::<String>() + "f1",
        "alias a=b; alias b=a; a".to_string(),
        "{a,b}".repeat(200),
        "$'\\x".repeat(n),
        "<(".repeat(n),
        "echo x | ".repeat(5000) + "sh",
        "echo cm0gLXJmIC8= | base64 -d | ".repeat(500) + "sh",
    ];
    for s in &inputs {
        let a = assess_script(s);
        assert!(!a.reason.is_empty());
    }
}

#[test]
fn blow_ups_still_give_a_safe_verdict() {
    // Wrapped too deeply to follow: never low.
    let a = assess_script(&("sudo ".repeat(5000) + "rm -rf /"));
    assert!(a.level >= Risk::High, "{a:?}");
    // Nested too deeply: never low.
    let s = format!("{}rm -rf /{}", "eval \"".repeat(12), "\"".repeat(12));
    assert!(assess_script(&s).level >= Risk::High);
    // A payload decoded through many stages is still found.
    let a = assess_script("echo cm0gLXJmIC8= | base64 -d | cat | cat | tee /dev/null | sh");
    assert_eq!(a.level, Risk::Refused, "{a:?}");
}

/// Commands of every kind the engine reads (tables, code, wrappers, inner commands), each
/// given non-ASCII, option-like and empty arguments in every position.
#[test]
fn odd_arguments_to_every_kind_of_command_never_panic() {
    const COMMANDS: &[&str] = &[
        "rm -rf",
        "find",
        "find / -name",
        "chmod -R",
        "cp",
        "mv",
        "dd",
        "tee",
        "sed -i",
        "tar -x -C",
        "awk",
        "kill",
        "pkill",
        "systemctl stop",
        "service",
        "sudo",
        "sudo -u",
        "env",
        "timeout",
        "xargs",
        "xargs -I",
        "parallel",
        "ssh",
        "kubectl exec",
        "kubectl delete",
        "kubectl scale",
        "docker run",
        "docker exec",
        "docker compose exec",
        "ansible all -m",
        "ansible all -a",
        "git push",
        "git -c",
        "gh api -X DELETE",
        "curl -X DELETE",
        "aws s3 rm",
        "gcloud",
        "terraform destroy",
        "psql -c",
        "mysql -e",
        "redis-cli",
        "mongosh --eval",
        "python3 -c",
        "perl -e",
        "node -e",
        "sh -c",
        "bash",
        "eval",
        "source",
        "su -c",
        "crontab",
        "at",
        "trap",
        "cd",
        "read",
        "set --",
        "printf -v",
        "alias",
        "declare -a",
        "nsenter -t",
        "chroot",
        "flock",
        "watch",
        "busybox",
        "npx",
        "manage.py",
        "rake",
    ];
    const ARGS: &[&str] = &[
        "é",
        "日本/x",
        "-é",
        "--é=1",
        "é=1",
        "",
        "-",
        "--",
        "ß-",
        "/é",
        "~é",
        "{}",
        ";",
        "+é",
        ":é",
        "s3://é",
        "-Xé",
        "\u{1}",
        "\u{3}",
        "𝕏",
        "-𝕏𝕏",
        "é:/",
        "\\é",
    ];
    let mut r = Rng(7);
    for cmd in COMMANDS {
        for _ in 0..40 {
            let n = r.below(4) + 1;
            let mut argv: Vec<String> = cmd.split(' ').map(String::from).collect();
            argv.extend((0..n).map(|_| ARGS[r.below(ARGS.len())].to_string()));
            let _ = assess(&argv);
            let script = argv
                .iter()
                .map(|a| format!("'{}'", a.replace('\'', "")))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = assess_script(&script);
            let _ = assess_script(&argv.join(" "));
        }
    }
}
