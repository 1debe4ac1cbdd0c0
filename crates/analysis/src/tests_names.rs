//! Failing test names from a JUnit XML report (the format pytest, jest-junit, Surefire, Gradle,
//! go-junit-report, nextest and dotnet loggers all write). Names found in the log itself come
//! from the knowledge base's `test` signatures.

/// Names (`classname.name`, or `name` alone) of the test cases with a `<failure>` or `<error>`.
pub fn junit_failures(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<testcase") {
        let after = &rest[start + "<testcase".len()..];
        // Must be the element itself, not e.g. `<testcases>`.
        if !after.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/') {
            rest = after;
            continue;
        }
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let tag = &after[..tag_end];
        let self_closing = tag.trim_end().ends_with('/');
        let body_start = tag_end + 1;
        let (body, next) = if self_closing {
            ("", &after[body_start..])
        } else {
            match after[body_start..].find("</testcase>") {
                Some(e) => (
                    &after[body_start..body_start + e],
                    &after[body_start + e + "</testcase>".len()..],
                ),
                None => (&after[body_start..], ""),
            }
        };
        if body.contains("<failure") || body.contains("<error") {
            let name = attr(tag, "name").unwrap_or_default();
            let class = attr(tag, "classname").unwrap_or_default();
            let full = match (class.is_empty(), name.is_empty()) {
                (false, false) => format!("{class}.{name}"),
                (true, false) => name,
                (false, true) => class,
                (true, true) => String::new(),
            };
            if !full.is_empty() && !out.contains(&full) {
                out.push(full);
            }
        }
        rest = next;
    }
    out
}

fn attr(tag: &str, key: &str) -> Option<String> {
    let mut search = tag;
    loop {
        let i = search.find(key)?;
        let before_ok = i == 0 || search.as_bytes()[i - 1].is_ascii_whitespace();
        let tail = search[i + key.len()..].trim_start();
        if before_ok {
            if let Some(v) = tail.strip_prefix('=') {
                let v = v.trim_start();
                let quote = v.chars().next()?;
                if quote == '"' || quote == '\'' {
                    let end = v[1..].find(quote)?;
                    return Some(unescape(&v[1..1 + end]));
                }
            }
        }
        search = &search[i + key.len()..];
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::junit_failures;

    #[test]
    fn failures_and_errors_are_named() {
        let xml = r#"<?xml version="1.0"?>
<testsuites><testsuite name="s" tests="4">
  <testcase classname="pkg.FooTest" name="passes" time="0.1"/>
  <testcase classname="pkg.FooTest" name="fails" time="0.1"><failure message="boom">trace</failure></testcase>
  <testcase name="errs &amp; dies"><error type="E"/></testcase>
  <testcase classname="pkg.BarTest" name="skipped"><skipped/></testcase>
</testsuite></testsuites>"#;
        assert_eq!(
            junit_failures(xml),
            vec!["pkg.FooTest.fails", "errs & dies"]
        );
    }

    #[test]
    fn empty_or_broken_reports_give_nothing() {
        assert!(junit_failures("").is_empty());
        assert!(junit_failures("<testcase name=\"x\"").is_empty());
    }
}
