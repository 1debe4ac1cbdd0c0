//! A deterministic generator of realistic failure traces. The mix of causes, the chance that a
//! re-run passes and the human fix times are documented with their sources in
//! `docs/simulate.md`; the log excerpts are written for this generator (not taken from the
//! knowledge base, which would make the replay flatter the analyzer).

use super::TraceRun;
use crate::category::Category;
use crate::event::Platform;

/// One kind of failure the generator draws.
#[derive(Debug, Clone, Copy)]
pub struct GeneratorMix {
    pub scenario: &'static str,
    /// Ground truth.
    pub category: Category,
    /// Share of failed runs, in percent.
    pub weight: f64,
    /// Chance that one plain re-run passes (re-runs are independent draws).
    pub retry_pass_probability: f64,
    /// Chance that the category's own remedy (bigger runner, cleared cache) then a re-run passes.
    pub remedy_pass_probability: Option<f64>,
    /// Median minutes a person needs once they take the failure over.
    pub fix_median_minutes: f64,
}

const fn mix(
    scenario: &'static str,
    category: Category,
    weight: f64,
    retry_pass_probability: f64,
    remedy_pass_probability: Option<f64>,
    fix_median_minutes: f64,
) -> GeneratorMix {
    GeneratorMix {
        scenario,
        category,
        weight,
        retry_pass_probability,
        remedy_pass_probability,
        fix_median_minutes,
    }
}

/// The documented mix (weights sum to 100); see docs/simulate.md for the sources.
#[rustfmt::skip]
pub const MIX: &[GeneratorMix] = &[
    // Needs a human: 65 %.
    //  scenario      ground truth                     weight  re-run  remedy      fix median
    mix("assertion",   Category::TestFailure,           30.0,   0.0,   None,       120.0),
    mix("racy_bug",    Category::TestFailure,            3.0,   0.5,   None,       240.0),
    mix("compile",     Category::CompilationError,      12.0,   0.0,   None,        60.0),
    mix("lint",        Category::LintError,              7.0,   0.0,   None,        20.0),
    mix("config",      Category::ConfigurationError,     4.0,   0.0,   None,        90.0),
    mix("conflict",    Category::DependencyConflict,     2.0,   0.0,   None,       120.0),
    mix("auth",        Category::Authentication,         2.0,   0.0,   None,        90.0),
    // Genuine, but the log looks transient: a service or mirror that stays broken.
    mix("chronic",     Category::ConfigurationError,     5.0,   0.0,   None,       240.0),
    // Transient: 35 %.
    mix("flaky",       Category::FlakyTest,              5.0,   0.8,   None,        45.0),
    mix("network",     Category::Network,                8.0,   0.85,  None,        45.0),
    mix("download",    Category::DependencyDownload,     5.0,   0.85,  None,        45.0),
    mix("timeout",     Category::Timeout,                4.0,   0.6,   None,        60.0),
    mix("infra",       Category::Infrastructure,         4.0,   0.8,   None,        45.0),
    mix("unavailable", Category::ServiceUnavailable,     3.0,   0.65,  None,        45.0),
    mix("rate",        Category::RateLimited,            2.0,   0.55,  None,        60.0),
    mix("oom",         Category::OutOfMemory,            2.0,   0.25,  Some(0.85),  90.0),
    mix("disk",        Category::DiskFull,               1.0,   0.3,   Some(0.9),   60.0),
    mix("cache",       Category::CacheCorruption,        1.0,   0.15,  Some(0.9),   60.0),
];

/// SplitMix64: tiny, fast and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// Log-normal around `median`, spread `sigma` in log space (Box–Muller).
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median * (sigma * z).exp()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Eco {
    Rust,
    Python,
    Node,
    Java,
    Go,
}

#[derive(Clone, Copy, PartialEq)]
enum Ci {
    Github,
    Gitlab,
    Jenkins,
    Circleci,
}

struct Repo {
    name: &'static str,
    eco: Eco,
    ci: Ci,
}

const REPOS: &[Repo] = &[
    Repo {
        name: "northwind/billing-api",
        eco: Eco::Java,
        ci: Ci::Jenkins,
    },
    Repo {
        name: "northwind/storefront",
        eco: Eco::Node,
        ci: Ci::Github,
    },
    Repo {
        name: "northwind/ledger",
        eco: Eco::Rust,
        ci: Ci::Gitlab,
    },
    Repo {
        name: "orbit/ingest",
        eco: Eco::Go,
        ci: Ci::Github,
    },
    Repo {
        name: "orbit/dashboards",
        eco: Eco::Node,
        ci: Ci::Circleci,
    },
    Repo {
        name: "orbit/ml-features",
        eco: Eco::Python,
        ci: Ci::Gitlab,
    },
    Repo {
        name: "tidepool/scheduler",
        eco: Eco::Rust,
        ci: Ci::Github,
    },
    Repo {
        name: "tidepool/notifier",
        eco: Eco::Python,
        ci: Ci::Github,
    },
    Repo {
        name: "tidepool/gateway",
        eco: Eco::Go,
        ci: Ci::Gitlab,
    },
    Repo {
        name: "kestrel/mobile-backend",
        eco: Eco::Java,
        ci: Ci::Github,
    },
];

const TESTS_RUST: &[&str] = &[
    "ledger::tests::rounds_half_even",
    "store::tests::compaction_keeps_tombstones",
    "api::tests::rejects_expired_token",
    "queue::tests::retries_are_bounded",
];
const TESTS_PY: &[&str] = &[
    "tests/test_features.py::test_window_alignment",
    "tests/test_notify.py::test_digest_groups_by_user",
    "tests/test_schema.py::test_nullable_columns",
    "tests/integration/test_sink.py::test_batch_flush",
];
const TESTS_NODE: &[&str] = &[
    "CartSummary › shows discount line",
    "checkout flow › applies gift card",
    "useFilters › resets page on change",
    "chart tooltips › formats currency",
];
const TESTS_JAVA: &[&str] = &[
    "InvoiceServiceTest.shouldApplyVatPerLine",
    "RefundControllerIT.rejectsDoubleRefund",
    "PushTokenRepositoryTest.expiresStaleTokens",
    "TaxTableTest.loadsRegionalOverrides",
];
const TESTS_GO: &[&str] = &[
    "TestBatcherFlushesOnSize",
    "TestRouterStripsHopHeaders",
    "TestDecodeSnappyFrames",
    "TestLeaseRenewal",
];

fn tests_of(eco: Eco) -> &'static [&'static str] {
    match eco {
        Eco::Rust => TESTS_RUST,
        Eco::Python => TESTS_PY,
        Eco::Node => TESTS_NODE,
        Eco::Java => TESTS_JAVA,
        Eco::Go => TESTS_GO,
    }
}

fn trailer(ci: Ci, code: u32) -> String {
    match ci {
        Ci::Github => format!("##[error]Process completed with exit code {code}."),
        Ci::Gitlab => format!("ERROR: Job failed: exit code {code}"),
        Ci::Jenkins => "Finished: FAILURE".to_string(),
        Ci::Circleci => format!("Exited with code exit status {code}"),
    }
}

/// Fills `{TEST}`, `{N}`, `{MS}`, `{IP}`, `{PORT}`, `{HEX}`, `{LINE}` and `{SEC}` with draws.
fn fill(rng: &mut Rng, template: &str, eco: Eco) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let key = &rest[open + 1..open + close];
        let v = match key {
            "TEST" => rng.pick(tests_of(eco)).to_string(),
            "N" => rng.range(2, 480).to_string(),
            "MS" => rng.range(1200, 58000).to_string(),
            "IP" => format!(
                "10.{}.{}.{}",
                rng.range(0, 40),
                rng.range(0, 255),
                rng.range(2, 250)
            ),
            "PORT" => rng
                .pick(&["5432", "6379", "9092", "8080", "27017"])
                .to_string(),
            "HEX" => format!("{:08x}", rng.next() as u32),
            "LINE" => rng.range(12, 420).to_string(),
            "SEC" => rng.range(3, 59).to_string(),
            other => format!("{{{other}}}"),
        };
        out.push_str(&v);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Log excerpts per scenario and ecosystem: the lines a person would see above the failure.
fn templates(scenario: &str, eco: Eco) -> &'static [&'static str] {
    match (scenario, eco) {
        ("assertion" | "racy_bug", Eco::Rust) => &[
            "running 48 tests\ntest {TEST} ... FAILED\n\nfailures:\n\n---- {TEST} stdout ----\nthread '{TEST}' panicked at src/lib.rs:{LINE}:5:\nassertion `left == right` failed: totals differ\n  left: 1200\n right: 1199\n\ntest result: FAILED. 47 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 2.{N}s",
            "test {TEST} ... FAILED\nfailures:\n---- {TEST} stdout ----\nthread '{TEST}' panicked at src/store.rs:{LINE}:9:\ncalled `Option::unwrap()` on a `None` value\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\ntest result: FAILED. 102 passed; 1 failed; 2 ignored",
        ],
        ("assertion" | "racy_bug", Eco::Python) => &[
            "============================= test session starts ==============================\ncollected 214 items\n\n{TEST} FAILED                             [ 41%]\n=================================== FAILURES ===================================\n>       assert result.rows == expected_rows\nE       AssertionError: assert 17 == 18\nE        +  where 17 = <Frame rows=17>.rows\n=========================== short test summary info ============================\nFAILED {TEST} - AssertionError: assert 17 == 18\n======================== 1 failed, 213 passed in {SEC}.41s ========================",
            "{TEST} FAILED\n    def test_digest():\n>       assert digest.subject.startswith('Your weekly')\nE       AttributeError: 'NoneType' object has no attribute 'subject'\nFAILED {TEST} - AttributeError: 'NoneType' object has no attribute 'subject'\n=================== 1 failed, 88 passed, 3 skipped in {SEC}.02s ===================",
        ],
        ("assertion" | "racy_bug", Eco::Node) => &[
            " FAIL  src/components/__tests__/CartSummary.test.tsx\n  ● {TEST}\n\n    expect(received).toHaveTextContent()\n\n    Expected element to have text content:\n      -10,00 €\n    Received:\n      -10.00 €\n\nTests:       1 failed, 311 passed, 312 total\nSnapshots:   0 total",
            " FAIL  src/hooks/useFilters.test.ts\n  ● {TEST}\n\n    expect(received).toBe(expected) // Object.is equality\n\n    Expected: 1\n    Received: 3\n\n      at Object.<anonymous> (src/hooks/useFilters.test.ts:{LINE}:27)\n\nTest Suites: 1 failed, 57 passed, 58 total",
        ],
        ("assertion" | "racy_bug", Eco::Java) => &[
            "[INFO] Running com.northwind.billing.{TEST}\n[ERROR] Tests run: 14, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 1.{N} s <<< FAILURE! - in com.northwind.billing.InvoiceServiceTest\n[ERROR] {TEST}  Time elapsed: 0.04 s  <<< FAILURE!\norg.opentest4j.AssertionFailedError: expected: <119.00> but was: <118.99>\n[ERROR] Failures: \n[ERROR]   {TEST}:{LINE} expected: <119.00> but was: <118.99>\n[ERROR] Tests run: 402, Failures: 1, Errors: 0, Skipped: 4\n[INFO] BUILD FAILURE",
            "{TEST} FAILED\n    java.lang.AssertionError: Expected status 409 but was 200\n        at com.kestrel.refunds.RefundControllerIT.rejectsDoubleRefund(RefundControllerIT.java:{LINE})\n\n211 tests completed, 1 failed\n\nFAILURE: Build failed with an exception.\n* What went wrong:\nExecution failed for task ':app:test'.\n> There were failing tests. See the report at: file:///builds/app/build/reports/tests/test/index.html",
        ],
        ("assertion" | "racy_bug", Eco::Go) => &[
            "=== RUN   {TEST}\n    batcher_test.go:{LINE}: got 3 batches, want 4\n--- FAIL: {TEST} (0.{N}s)\nFAIL\nFAIL\tgithub.com/orbit/ingest/internal/batch\t0.913s\nFAIL",
            "--- FAIL: {TEST} (0.00s)\n    router_test.go:{LINE}: header \"Connection\" still present after Strip\nFAIL\nFAIL\tgithub.com/tidepool/gateway/router\t1.204s\nok  \tgithub.com/tidepool/gateway/auth\t0.331s",
        ],
        ("compile", Eco::Rust) => &[
            "   Compiling ledger v0.9.{N} (/builds/northwind/ledger)\nerror[E0308]: mismatched types\n  --> src/posting.rs:{LINE}:24\n   |\n{LINE} |         amount: entry.amount,\n   |                 ^^^^^^^^^^^^ expected `Decimal`, found `i64`\n\nFor more information about this error, try `rustc --explain E0308`.\nerror: could not compile `ledger` (lib) due to 1 previous error",
            "   Compiling scheduler v1.3.0 (/home/runner/work/scheduler/scheduler)\nerror[E0599]: no method named `next_fire` found for reference `&Cron` in the current scope\n   --> src/plan.rs:{LINE}:18\n    |\n{LINE} |     let at = cron.next_fire(now)?;\n    |                   ^^^^^^^^^ method not found in `&Cron`\nerror: could not compile `scheduler` (bin \"scheduler\") due to 1 previous error",
        ],
        ("compile", Eco::Python) => &[
            "Traceback (most recent call last):\n  File \"/builds/orbit/ml-features/features/__init__.py\", line {LINE}, in <module>\n    from .windows import rolling_mean\n  File \"/builds/orbit/ml-features/features/windows.py\", line 44\n    return frame.rolling(window=size).mean(\n                                          ^\nSyntaxError: '(' was never closed",
            "ImportError while loading conftest '/home/runner/work/notifier/tests/conftest.py'.\ntests/conftest.py:7: in <module>\n    from notifier.digest import build_digest\nE   ImportError: cannot import name 'build_digest' from 'notifier.digest' (/home/runner/work/notifier/notifier/digest.py)",
        ],
        ("compile", Eco::Node) => &[
            "> storefront@4.2.0 build\n> tsc -p tsconfig.build.json && vite build\n\nsrc/pages/Checkout.tsx({LINE},17): error TS2339: Property 'giftCard' does not exist on type 'CartState'.\nsrc/pages/Checkout.tsx({LINE},31): error TS2345: Argument of type 'string | undefined' is not assignable to parameter of type 'string'.\nFound 2 errors in the same file, starting at: src/pages/Checkout.tsx:{LINE}",
            "vite v5.2.{N} building for production...\n✓ 812 modules transformed.\nx Build failed in 4.{N}s\nerror during build:\n[vite:esbuild] Transform failed with 1 error:\n/home/circleci/project/src/charts/Tooltip.tsx:{LINE}:8: ERROR: Expected \")\" but found \"}\"",
        ],
        ("compile", Eco::Java) => &[
            "[INFO] --- maven-compiler-plugin:3.11.0:compile (default-compile) @ billing-api ---\n[ERROR] COMPILATION ERROR : \n[ERROR] /var/lib/jenkins/workspace/billing-api/src/main/java/com/northwind/billing/VatCalculator.java:[{LINE},25] cannot find symbol\n  symbol:   method roundHalfEven(java.math.BigDecimal)\n  location: class com.northwind.billing.Money\n[INFO] BUILD FAILURE\n[ERROR] Failed to execute goal org.apache.maven.plugins:maven-compiler-plugin:3.11.0:compile (default-compile) on project billing-api: Compilation failure",
            "> Task :app:compileJava FAILED\n/home/runner/work/mobile-backend/app/src/main/java/com/kestrel/push/PushSender.java:{LINE}: error: incompatible types: Optional<Token> cannot be converted to Token\n        Token t = repo.findActive(userId);\n                                 ^\n1 error\n\nFAILURE: Build failed with an exception.",
        ],
        ("compile", Eco::Go) => &[
            "# github.com/orbit/ingest/internal/decode\ninternal/decode/snappy.go:{LINE}:14: undefined: frameHeaderLen\ninternal/decode/snappy.go:{LINE}:2: missing return\nFAIL\tgithub.com/orbit/ingest/internal/decode [build failed]",
            "go: downloading golang.org/x/sync v0.7.0\n# github.com/tidepool/gateway/lease\nlease/renew.go:{LINE}:9: cannot use d (variable of type time.Duration) as int64 value in argument to l.extend\nmake: *** [Makefile:14: build] Error 1",
        ],
        ("lint", Eco::Rust) => &[
            "    Checking scheduler v1.3.0 (/home/runner/work/scheduler/scheduler)\nerror: this `if` has identical blocks\n  --> src/plan.rs:{LINE}:20\n   |\n   = help: for further information visit https://rust-lang.github.io/rust-clippy/master/index.html#if_same_then_else\n   = note: `-D clippy::if-same-then-else` implied by `-D warnings`\nerror: could not compile `scheduler` (lib) due to 1 previous error",
            "$ cargo fmt --all -- --check\nDiff in /builds/northwind/ledger/src/posting.rs at line {LINE}:\n-    let total = lines.iter().map(|l| l.amount).sum::<Decimal>();\n+    let total = lines\n+        .iter()\n+        .map(|l| l.amount)\n+        .sum::<Decimal>();",
        ],
        ("lint", Eco::Python) => &[
            "$ ruff check .\nfeatures/windows.py:{LINE}:5: F841 Local variable `frame_len` is assigned to but never used\nfeatures/io.py:12:1: I001 Import block is un-sorted or un-formatted\nFound 2 errors.\n[*] 1 fixable with the `--fix` option.",
            "would reformat /home/runner/work/notifier/notifier/digest.py\n\nOh no! 💥 💔 💥\n1 file would be reformatted, 41 files would be left unchanged.",
        ],
        ("lint", Eco::Node) => &[
            "> eslint . --max-warnings 0\n\n/home/runner/work/storefront/src/pages/Checkout.tsx\n  {LINE}:9  error  'setCoupon' is assigned a value but never used  @typescript-eslint/no-unused-vars\n  {LINE}:3  error  React Hook useEffect has a missing dependency: 'cart'  react-hooks/exhaustive-deps\n\n✖ 2 problems (2 errors, 0 warnings)",
            "Checking formatting...\n[warn] src/charts/Tooltip.tsx\n[warn] src/charts/Legend.tsx\n[warn] Code style issues found in 2 files. Run Prettier with --write to fix.",
        ],
        ("lint", Eco::Java) => &[
            "[INFO] --- maven-checkstyle-plugin:3.3.1:check (validate) @ billing-api ---\n[ERROR] src/main/java/com/northwind/billing/Money.java:[{LINE},5] (javadoc) MissingJavadocMethod: Missing a Javadoc comment.\n[INFO] You have 1 Checkstyle violation.\n[ERROR] Failed to execute goal org.apache.maven.plugins:maven-checkstyle-plugin:3.3.1:check (validate) on project billing-api: You have 1 Checkstyle violation. -> [Help 1]",
            "> Task :app:spotlessJavaCheck FAILED\n\nFAILURE: Build failed with an exception.\n* What went wrong:\nExecution failed for task ':app:spotlessJavaCheck'.\n> The following files had format violations:\n      src/main/java/com/kestrel/push/PushSender.java",
        ],
        ("lint", Eco::Go) => &[
            "internal/batch/batcher.go:{LINE}:2: ineffectual assignment to err (ineffassign)\n\terr = b.flush(ctx)\n\t^\ninternal/batch/batcher.go:88:15: Error return value of `conn.Close` is not checked (errcheck)\nlevel=error msg=\"[runner] 2 issues found\"",
            "$ gofmt -l .\nlease/renew.go\nrouter/strip.go\nmake: *** [Makefile:22: fmt-check] Error 1",
        ],
        ("config", _) => &[
            "Error: .github/workflows/ci.yml (Line: {LINE}, Col: 9): Unexpected value 'runs_on'\nThe workflow is not valid.",
            "$ docker compose -f ci/compose.yml up -d\nservice \"db\" refers to undefined volume pgdata: invalid compose project",
            "Error: Unable to resolve action `actions/setup-nodee@v4`, repository not found",
            "jobs:integration config contains unknown keys: artifact\nThis GitLab CI configuration is invalid: jobs:integration config contains unknown keys: artifact",
        ],
        ("conflict", Eco::Python | Eco::Rust | Eco::Go) => &[
            "ERROR: Cannot install apache-beam==2.55.0 and protobuf==5.26.1 because these package versions have conflicting dependencies.\n\nThe conflict is caused by:\n    The user requested protobuf==5.26.1\n    apache-beam 2.55.0 depends on protobuf<4.26.0 and >=3.20.3",
            "    Updating crates.io index\nerror: failed to select a version for `tokio`.\n    ... required by package `scheduler v1.3.0`\nversions that meet the requirements `^1.38` are: 1.38.0\nthe package `scheduler` depends on `tokio`, with features: `tracing` but `tokio` does not have these features.",
            "go: github.com/tidepool/gateway imports\n\tgithub.com/acme/lease/v2: github.com/acme/lease/v2@v2.1.0: parsing go.mod:\n\tmodule declares its path as: github.com/acme/lease\n\t        but was required as: github.com/acme/lease/v2",
        ],
        ("conflict", Eco::Node | Eco::Java) => &[
            "npm ERR! code ERESOLVE\nnpm ERR! ERESOLVE unable to resolve dependency tree\nnpm ERR! Found: react@18.3.1\nnpm ERR! Could not resolve dependency:\nnpm ERR! peer react@\"^17.0.0\" from react-gift-card@2.4.{N}",
            "[ERROR] Failed to execute goal org.apache.maven.plugins:maven-enforcer-plugin:3.4.1:enforce (enforce) on project billing-api:\n[WARNING] Rule 0: org.apache.maven.enforcer.rules.dependency.DependencyConvergence failed with message:\nDependency convergence error for com.fasterxml.jackson.core:jackson-databind:2.15.2 paths to dependency are:",
        ],
        ("auth", _) => &[
            "Error response from daemon: Head \"https://registry.gitlab.com/v2/orbit/ingest/manifests/ci\": unauthorized: HTTP Basic: Access denied. The provided password or token is incorrect or your account has 2FA enabled",
            "remote: Invalid username or password.\nfatal: Authentication failed for 'https://github.com/northwind/tax-tables.git/'",
            "npm ERR! code E401\nnpm ERR! Unable to authenticate, your authentication token seems to be invalid.",
            "Error: error configuring S3 Backend: no valid credential sources for S3 Backend found.\n\tPlease see https://www.terraform.io/docs/language/settings/backends/s3.html\n\tfor more information about providing credentials.",
        ],
        ("flaky", Eco::Rust) => &[
            "test {TEST} ... FAILED\n---- {TEST} stdout ----\nthread '{TEST}' panicked at tests/it.rs:{LINE}:5:\ntimed out waiting for worker to acknowledge after {MS}ms\ntest result: FAILED. 61 passed; 1 failed; 0 ignored",
            "test {TEST} ... FAILED\n---- {TEST} stdout ----\nthread '{TEST}' panicked at src/queue.rs:{LINE}:13:\nassertion failed: elapsed < Duration::from_millis(50)\ntest result: FAILED. 88 passed; 1 failed",
        ],
        ("flaky", Eco::Python) => &[
            "{TEST} FAILED\nE       redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Connection refused.\nFAILED {TEST} - redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379.\n========= 1 failed, 120 passed in {SEC}.77s =========",
            "{TEST} FAILED\nE       assert 0.1999 == 0.2\nE        +  where 0.1999 = round(0.19985, 4)\nFAILED {TEST} - assert 0.1999 == 0.2\n========= 1 failed, 301 passed, 2 xfailed in {SEC}.10s =========",
        ],
        ("flaky", Eco::Node) => &[
            "  ● {TEST}\n\n    thrown: \"Exceeded timeout of 15000 ms for a test.\n    Add a timeout value to this test to increase the timeout, if this is a long-running test.\"\n\nTests:       1 failed, 207 passed, 208 total",
            "  1) {TEST}:\n     TimeoutError: locator.click: Timeout 30000ms exceeded.\n     =========================== logs ===========================\n     waiting for getByRole('button', { name: 'Pay now' })\n  1 failed\n  58 passed ({SEC}.3s)",
        ],
        ("flaky", Eco::Java) => &[
            "[ERROR] {TEST}  Time elapsed: 30.0{N} s  <<< ERROR!\norg.awaitility.core.ConditionTimeoutException: Condition with lambda expression in RefundControllerIT was not fulfilled within 30 seconds.\n[ERROR] Tests run: 402, Failures: 0, Errors: 1, Skipped: 4\n[INFO] BUILD FAILURE",
            "[ERROR] {TEST}  Time elapsed: 2.{N} s  <<< FAILURE!\norg.opentest4j.AssertionFailedError: expected: <2> but was: <1>\n[ERROR] Tests run: 402, Failures: 1, Errors: 0, Skipped: 4\n[INFO] BUILD FAILURE",
        ],
        ("flaky", Eco::Go) => &[
            "=== RUN   {TEST}\n    lease_test.go:{LINE}: lease not renewed within 200ms (took 231ms)\n--- FAIL: {TEST} (0.{N}s)\nFAIL\tgithub.com/tidepool/gateway/lease\t2.118s",
            "WARNING: DATA RACE\nWrite at 0x00c000{HEX} by goroutine 41:\n  github.com/orbit/ingest/internal/batch.(*Batcher).add()\n--- FAIL: {TEST} (0.02s)\n    testing.go:1398: race detected during execution of test\nFAIL",
        ],
        ("network", _) => &[
            "fatal: unable to access 'https://github.com/northwind/tax-tables.git/': Could not resolve host: github.com\nError: The process '/usr/bin/git' failed with exit code 128",
            "error: RPC failed; curl 92 HTTP/2 stream 5 was not closed cleanly: CANCEL (err 8)\nerror: {N} bytes of body are still expected\nfetch-pack: unexpected disconnect while reading sideband packet\nfatal: early EOF",
            "curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to objects.githubusercontent.com:443\nError: Process completed with exit code 35.",
            "dial tcp {IP}:443: connect: connection reset by peer\nError: failed to fetch https://proxy.golang.org/github.com/klauspost/compress/@v/v1.17.{N}.zip",
            "Caused by: java.net.SocketException: Connection reset by peer\n\tat java.base/sun.nio.ch.NioSocketImpl.implRead(NioSocketImpl.java:{LINE})\n[ERROR] Failed to execute goal on project billing-api: Could not transfer artifact com.northwind:tax-tables:jar:3.{N}.0 from/to internal (https://nexus.northwind.io/repository/maven-releases/)",
        ],
        ("download", Eco::Rust) => &[
            "    Updating crates.io index\n  Downloaded serde_json v1.0.{N}\nerror: failed to download from `https://static.crates.io/crates/ring/0.17.8/download`\n\nCaused by:\n  [28] Timeout was reached (Operation too slow. Less than 10 bytes/sec transferred the last 30 seconds)",
        ],
        ("download", Eco::Python) => &[
            "Collecting pyarrow==15.0.2\n  Downloading pyarrow-15.0.2-cp311-cp311-manylinux_2_28_x86_64.whl (38.3 MB)\n     ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 12.{N}/38.3 MB 1.1 MB/s eta 0:00:23\nERROR: Exception:\nurllib3.exceptions.ProtocolError: ('Connection broken: IncompleteRead(12{N}0 bytes read, 26{N}4 more expected)', IncompleteRead(12{N}0 bytes read))",
        ],
        ("download", Eco::Node) => &[
            "npm ERR! code ETIMEDOUT\nnpm ERR! errno ETIMEDOUT\nnpm ERR! network request to https://registry.npmjs.org/@vitejs%2fplugin-react failed, reason: connect ETIMEDOUT 104.16.{N}.35:443\nnpm ERR! network This is a problem related to network connectivity.",
            "error An unexpected error occurred: \"https://registry.yarnpkg.com/chart.js/-/chart.js-4.4.{N}.tgz: ESOCKETTIMEDOUT\".\ninfo If you think this is a bug, please open a bug report with the information provided in \"/home/circleci/project/yarn-error.log\".",
        ],
        ("download", Eco::Java) => &[
            "Downloading from central: https://repo.maven.apache.org/maven2/org/postgresql/postgresql/42.7.{N}/postgresql-42.7.{N}.jar\n[ERROR] Failed to execute goal on project billing-api: Could not resolve dependencies for project com.northwind:billing-api:jar:2.8.0: Could not transfer artifact org.postgresql:postgresql:jar:42.7.3 from/to central (https://repo.maven.apache.org/maven2): Read timed out",
            "> Could not resolve all files for configuration ':app:runtimeClasspath'.\n   > Could not download netty-codec-http2-4.1.{N}.Final.jar (io.netty:netty-codec-http2:4.1.109.Final)\n      > Could not get resource 'https://repo.maven.apache.org/maven2/io/netty/netty-codec-http2/4.1.109.Final/netty-codec-http2-4.1.109.Final.jar'.\n         > Premature end of Content-Length delimited message body (expected: 731,{N}; received: 262,144)",
        ],
        ("download", Eco::Go) => &[
            "go: downloading google.golang.org/grpc v1.64.0\ngo: google.golang.org/grpc@v1.64.0: Get \"https://proxy.golang.org/google.golang.org/grpc/@v/v1.64.0.zip\": net/http: TLS handshake timeout",
        ],
        ("infra", _) => INFRA_ANY,
        ("unavailable", _) => &[
            "Error: Failed to download action 'https://api.github.com/repos/actions/cache/tarball/{HEX}'. Error: Response status code does not indicate success: 503 (Service Unavailable).",
            "npm ERR! code E502\nnpm ERR! 502 Bad Gateway - GET https://registry.npmjs.org/@types%2fnode",
            "WARNING: Uploading artifacts as \"archive\" to coordinator... 502 Bad Gateway  id={N} responseStatus=502 Bad Gateway status=502\nERROR: Uploading artifacts as \"archive\" to coordinator... error  error=couldn't execute POST against https://gitlab.com/api/v4/jobs/{N}/artifacts",
            "error: failed to get `serde` as a dependency of package `ledger v0.9.3`\nCaused by:\n  failed to query replaced source registry `crates-io`\nCaused by:\n  download of se/rd/serde failed: failed to get successful HTTP response from `https://index.crates.io/se/rd/serde`, got 503",
        ],
        ("rate", _) => &[
            "Error response from daemon: toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limits",
            "Error: API rate limit exceeded for installation ID {N}.\n    at /home/runner/work/_actions/actions/github-script/v7/dist/index.js:{LINE}:15",
            "gh: API rate limit exceeded for user ID {N}. (HTTP 403)",
        ],
        ("oom", Eco::Node) => &[
            "<--- Last few GCs --->\n[{N}:0x5f1c3a0]    81234 ms: Mark-Compact 2034.1 (2083.6) -> 2032.8 (2084.1) MB, 1611.42 / 0.00 ms  (average mu = 0.11, current mu = 0.03) allocation failure\n\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n 1: 0xb7d910 node::Abort() [node]",
        ],
        ("oom", Eco::Java) => &[
            "Exception in thread \"Test worker\" java.lang.OutOfMemoryError: GC overhead limit exceeded\n\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)\n> Task :app:test FAILED",
        ],
        ("oom", _) => &[
            "error: could not compile `arrow-array` (lib)\n\nCaused by:\n  process didn't exit successfully: `/home/runner/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/rustc --crate-name arrow_array --edition=2021` (signal: 9, SIGKILL: kill)",
            "/bin/sh: line 1: {N} Killed                  python -m pytest -n 4 tests/\nmake: *** [Makefile:31: test] Error 137",
            "E   MemoryError: Unable to allocate 3.{N} GiB for an array with shape (420000000,) and data type float64",
        ],
        ("disk", _) => &[
            "write /var/lib/docker/tmp/GetImageBlob{N}: no space left on device",
            "error: failed to write /builds/northwind/ledger/target/debug/deps/libledger-{HEX}.rlib: No space left on device (os error 28)",
            "System.IO.IOException: No space left on device : '/home/runner/runners/2.317.0/_diag/Worker_{N}.log'",
        ],
        ("cache", _) => &[
            "Warning: Failed to restore: Cache service responded with 400\nerror: failed to parse lock file at: /home/runner/work/scheduler/Cargo.lock\nCaused by:\n  invalid type: integer, expected a string",
            "npm ERR! code EINTEGRITY\nnpm ERR! sha512-{HEX}== integrity checksum failed when using sha512: wanted sha512-{HEX}== but got sha512-{HEX}==. ({N} bytes)",
            "error: the cached build artifact for `zstd-sys v2.0.10` is corrupt: invalid rlib header\nhelp: remove the `target` directory and rebuild",
        ],
        _ => &[],
    }
}

/// Failures the runner itself reports, in its own words; the runner's last line ends the log.
fn runner_templates(scenario: &str, ci: Ci) -> &'static [&'static str] {
    match (scenario, ci) {
        ("timeout", Ci::Github) => &["The job running on runner GitHub Actions {N} has exceeded the maximum execution time of 60 minutes.\n##[error]The operation was canceled."],
        ("timeout", Ci::Gitlab) => &["ERROR: Job failed: execution took longer than 1h0m0s seconds"],
        ("timeout", Ci::Jenkins) => &["Build timed out (after 45 minutes). Marking the build as aborted.\nBuild was aborted\nFinished: ABORTED"],
        ("timeout", Ci::Circleci) => &["Too long with no output (exceeded 20m0s): context deadline exceeded"],
        ("infra", Ci::Github) => &["The runner has received a shutdown signal. This may happen when the runner service is stopped, or a manually started runner is canceled.\n##[error]The operation was canceled."],
        ("infra", Ci::Gitlab) => &["ERROR: Job failed (system failure): Error response from daemon: container create: open /var/lib/docker/overlay2/{HEX}/lower: no such file or directory"],
        _ => &[],
    }
}

/// Infrastructure failures any runner shows, followed by its exit line.
const INFRA_ANY: &[&str] = &[
    "Cannot contact ci-agent-{N}: java.lang.InterruptedException\nERROR: Issue with creating launcher for agent ci-agent-{N}. The agent is being disconnected\nERROR: Connection was broken: java.nio.channels.ClosedChannelException",
    "Error response from daemon: Get \"https://registry-1.docker.io/v2/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
];

/// Logs of failures that persist in one repository: they look transient but no re-run fixes
/// them (a service container that never starts, a mirror that went away).
const CHRONIC: &[&str] = &[
    "psycopg2.OperationalError: could not connect to server: Connection refused\n\tIs the server running on host \"postgres\" (172.18.0.3) and accepting TCP/IP connections on port 5432?\nERROR tests/integration - psycopg2.OperationalError",
    "Error: connect ECONNREFUSED 127.0.0.1:6379\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1595:16)\nerror Command failed with exit code 1.",
    "[ERROR] Failed to execute goal on project billing-api: Could not resolve dependencies for project com.northwind:billing-api:jar:2.8.0: Could not transfer artifact com.northwind:tax-tables:jar:3.1.0 from/to internal (https://nexus-old.northwind.io/repository/releases/): Connect to nexus-old.northwind.io:443 failed: connect timed out",
    "go: github.com/orbit/protos@v0.4.1: reading https://goproxy.orbit.internal/github.com/orbit/protos/@v/v0.4.1.mod: 503 Service Unavailable",
    "thread 'main' panicked at tests/it.rs:21:10:\nfailed to start test cluster: Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" }",
];

fn jobs_for(scenario: &str) -> &'static [&'static str] {
    match scenario {
        "assertion" | "racy_bug" | "flaky" => &["test", "unit-tests", "integration-tests", "e2e"],
        "compile" => &["build", "compile"],
        "lint" => &["lint", "format-check"],
        "chronic" => &["integration-tests", "build"],
        "oom" | "disk" | "cache" => &["build", "test"],
        _ => &["build", "test", "package", "integration-tests"],
    }
}

/// Deploy jobs are drawn on this share of runs whose cause can hit a deploy.
const DEPLOY_SHARE: f64 = 0.12;
const DEPLOY_JOBS: &[&str] = &["deploy-staging", "deploy-production", "publish-image"];

fn exit_code(scenario: &str) -> u32 {
    match scenario {
        "oom" => 137,
        "network" => 128,
        _ => 1,
    }
}

/// Share of failed jobs that were the last of their run to finish (nothing else ran on).
const LAST_JOB_SHARE: f64 = 0.3;
/// Median minutes the other jobs of a run go on after a job failed, when some do.
const REST_MEDIAN_MINUTES: f64 = 6.0;

impl Ci {
    fn platform(self) -> Platform {
        match self {
            Ci::Github => Platform::Github,
            Ci::Gitlab => Platform::Gitlab,
            Ci::Jenkins => Platform::Jenkins,
            Ci::Circleci => Platform::Circleci,
        }
    }
}

/// Minutes the rest of a run goes on after the failed job.
fn run_rest(rng: &mut Rng) -> f64 {
    if rng.unit() < LAST_JOB_SHARE {
        0.0
    } else {
        round1(rng.lognormal(REST_MEDIAN_MINUTES, 0.8).clamp(0.5, 60.0))
    }
}

/// `n` runs drawn from `MIX`, the same for the same `seed`.
pub fn generate(n: usize, seed: u64) -> Vec<TraceRun> {
    let mut rng = Rng(seed);
    // A stream of its own for the run's rest, so every other field stays as it was per seed.
    let mut rest_rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let total: f64 = MIX.iter().map(|m| m.weight).sum();
    // Which chronic failure each repository suffers from: episodes start and end along the trace.
    let mut chronic_of: Vec<usize> = (0..REPOS.len()).map(|_| rng.below(CHRONIC.len())).collect();
    (0..n)
        .map(|i| {
            // Every 250 runs, a repository's chronic failure is fixed and another appears.
            if i > 0 && i % 250 == 0 {
                let r = rng.below(REPOS.len());
                chronic_of[r] = rng.below(CHRONIC.len());
            }
            let mut x = rng.unit() * total;
            let m = MIX
                .iter()
                .find(|m| {
                    x -= m.weight;
                    x < 0.0
                })
                .unwrap_or(&MIX[0]);
            let ri = rng.below(REPOS.len());
            let repo = &REPOS[ri];
            let own = runner_templates(m.scenario, repo.ci);
            // When the runner reports the failure itself, its report is the end of the log.
            let runner_ends = !own.is_empty() && (m.scenario == "timeout" || rng.unit() < 0.5);
            let body = if m.scenario == "chronic" {
                CHRONIC[chronic_of[ri]].to_string()
            } else if runner_ends {
                let t = *rng.pick(own);
                fill(&mut rng, t, repo.eco)
            } else {
                let t = *rng.pick(templates(m.scenario, repo.eco));
                fill(&mut rng, t, repo.eco)
            };
            let log = if runner_ends {
                body
            } else {
                format!("{body}\n{}", trailer(repo.ci, exit_code(m.scenario)))
            };
            let deployable = matches!(
                m.scenario,
                "network" | "infra" | "unavailable" | "timeout" | "auth" | "config" | "rate"
            );
            let job = if deployable && rng.unit() < DEPLOY_SHARE {
                rng.pick(DEPLOY_JOBS)
            } else {
                rng.pick(jobs_for(m.scenario))
            };
            let reruns_to_pass = (1..=4u32).find(|_| rng.unit() < m.retry_pass_probability);
            let remedy_passes = m.remedy_pass_probability.map(|p| rng.unit() < p);
            let duration = round1(rng.lognormal(9.0, 0.6).clamp(1.5, 90.0));
            // A person restarts a transient failure (and waits for the runs) or fixes the cause.
            let human = rng.lognormal(m.fix_median_minutes, 0.8).clamp(5.0, 2880.0);
            let ci_after_fix = if m.category.is_transient() {
                reruns_to_pass.unwrap_or(2) as f64 * duration
            } else {
                duration
            };
            TraceRun {
                id: format!("run-{:05}", i + 1),
                repository: repo.name.to_string(),
                job: job.to_string(),
                stage: None,
                category: m.category,
                log: Some(log),
                fingerprint: None,
                reruns_to_pass,
                remedy_passes,
                duration_minutes: duration,
                fix_minutes: round1(human + ci_after_fix),
                platform: Some(repo.ci.platform()),
                run_rest_minutes: Some(run_rest(&mut rest_rng)),
            }
        })
        .collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::kb::parse_kb;
    use crate::analysis::BUILTIN_KB;

    #[test]
    fn the_mix_sums_to_one_hundred_percent_and_every_scenario_has_logs() {
        let total: f64 = MIX.iter().map(|m| m.weight).sum();
        assert!((total - 100.0).abs() < 1e-9, "{total}");
        for m in MIX
            .iter()
            .filter(|m| !matches!(m.scenario, "chronic" | "timeout"))
        {
            for eco in [Eco::Rust, Eco::Python, Eco::Node, Eco::Java, Eco::Go] {
                assert!(!templates(m.scenario, eco).is_empty(), "{}", m.scenario);
            }
        }
        for ci in [Ci::Github, Ci::Gitlab, Ci::Jenkins, Ci::Circleci] {
            assert!(!runner_templates("timeout", ci).is_empty());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
        let a = super::super::to_jsonl(&generate(300, 42));
        assert_eq!(a, super::super::to_jsonl(&generate(300, 42)));
        assert_ne!(a, super::super::to_jsonl(&generate(300, 43)));
        assert_eq!(super::super::parse_trace(&a).unwrap().len(), 300);
    }

    #[test]
    fn generated_logs_do_not_reuse_the_knowledge_base_examples() {
        let examples: Vec<String> = parse_kb(BUILTIN_KB)
            .unwrap()
            .into_iter()
            .flat_map(|s| s.examples)
            .map(|e| e.trim().to_string())
            .collect();
        // The runners' exit lines and fixed banners are every log's own words; a whole message
        // line shared with an example would make the replay test the examples.
        let generic = [
            "Traceback (most recent call last):",
            "##[error]The operation was canceled.",
            "=================================== FAILURES ===================================",
        ];
        let copied: Vec<String> = generate(2000, 1)
            .into_iter()
            .flat_map(|r| {
                r.log
                    .unwrap_or_default()
                    .lines()
                    .map(str::trim)
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .filter(|l| {
                let trailer_line = [Ci::Github, Ci::Gitlab, Ci::Jenkins, Ci::Circleci]
                    .iter()
                    .any(|&ci| [1, 128, 137].iter().any(|&c| trailer(ci, c) == *l));
                l.len() >= 30
                    && !trailer_line
                    && !generic.contains(&l.as_str())
                    && examples.contains(l)
            })
            .collect();
        assert!(
            copied.is_empty(),
            "lines copied from the knowledge base: {copied:?}"
        );
    }

    #[test]
    fn the_generated_mix_follows_the_weights() {
        let runs = generate(4000, 3);
        let transient = runs.iter().filter(|r| r.is_transient()).count() as f64 / 4000.0;
        let want: f64 = MIX
            .iter()
            .filter(|m| m.category.is_transient())
            .map(|m| m.weight / 100.0)
            .sum();
        assert!((transient - want).abs() < 0.03, "{transient} vs {want}");
    }
}
