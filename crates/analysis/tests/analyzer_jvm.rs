//! Gradle, Maven and Kotlin failures the way a Java team's CI logs show them (GitHub Actions
//! timestamps, Gradle's `* What went wrong:` cause chains, Maven's `[ERROR]` lines): the JVM
//! running out of heap, a repository answering 502, the Kotlin daemon dying, and the genuine
//! failures next to them that must not be retried.

use pipeguard_analysis::{Analyzer, Diagnosis};
use pipeguard_taxonomy::Category;

fn gha(lines: &str) -> String {
    lines
        .lines()
        .enumerate()
        .map(|(i, l)| {
            format!(
                "2025-03-02T09:14:{:02}.{:07}Z {l}\n",
                i % 60,
                i * 104_729 % 10_000_000
            )
        })
        .collect()
}

#[track_caller]
fn expect(log: &str, category: Category, transient: bool, evidence: &str) -> Diagnosis {
    let d = Analyzer::builtin().analyze(gha(log).as_bytes());
    assert_eq!(d.category, category, "{d:#?}");
    assert_eq!(d.transient, transient, "{d:#?}");
    assert!(
        d.evidence.iter().any(|e| e.text.contains(evidence)),
        "evidence lacks {evidence:?}: {d:#?}"
    );
    d
}

const GRADLE_HEAD: &str = "##[group]Run ./gradlew build --no-daemon
Downloading https://services.gradle.org/distributions/gradle-8.5-bin.zip
.............10%.............20%.............30%.............40%.............50%
Welcome to Gradle 8.5!
> Task :buildSrc:compileKotlin
> Task :app:processResources
";

const GRADLE_TAIL: &str = "
* Try:
> Run with --stacktrace option to get the stack trace.
> Run with --info or --debug option to get more log output.
> Run with --scan to get full insights.
> Get more help at https://help.gradle.org.

BUILD FAILED in 2m 14s
12 actionable tasks: 12 executed
##[error]Process completed with exit code 1.
";

#[test]
fn gradle_heap_exhausted_is_out_of_memory() {
    let oom = [
        "> Task :app:compileJava FAILED

FAILURE: Build failed with an exception.

* What went wrong:
Execution failed for task ':app:compileJava'.
> java.lang.OutOfMemoryError: Java heap space
",
        "> Task :app:mergeDexRelease FAILED

FAILURE: Build failed with an exception.

* What went wrong:
Execution failed for task ':app:mergeDexRelease'.
> A failure occurred while executing com.android.build.gradle.internal.tasks.DexMergingTaskDelegate
   > java.lang.OutOfMemoryError: GC overhead limit exceeded
",
        "> Task :app:compileKotlin
Expiring Daemon because JVM heap space is exhausted
Daemon will be stopped at the end of the build after running out of JVM memory

FAILURE: Build failed with an exception.

* What went wrong:
Gradle build daemon has been stopped: JVM garbage collector thrashing and after running out of JVM memory
",
    ];
    for (o, evidence) in oom
        .iter()
        .zip(["Java heap space", "GC overhead", "JVM memory"])
    {
        expect(
            &format!("{GRADLE_HEAD}{o}{GRADLE_TAIL}"),
            Category::OutOfMemory,
            true,
            evidence,
        );
    }
}

#[test]
fn gradle_repository_answering_5xx_or_timing_out_is_a_dependency_download() {
    let causes = [
        "            > Could not GET 'https://repo.maven.apache.org/maven2/com/google/guava/guava/32.1.2-jre/guava-32.1.2-jre.pom'. Received status code 502 from server: Bad Gateway",
        "            > Could not HEAD 'https://plugins.gradle.org/m2/org/jetbrains/kotlin/kotlin-stdlib/1.9.22/kotlin-stdlib-1.9.22.pom'. Received status code 503 from server: Service Unavailable",
        "            > Could not GET 'https://dl.google.com/dl/android/maven2/com/android/tools/build/gradle/8.2.0/gradle-8.2.0.pom'.\n               > Read timed out",
        "            > Could not GET 'https://repo.maven.apache.org/maven2/io/netty/netty-all/4.1.100.Final/netty-all-4.1.100.Final.pom'.\n               > Connect to repo.maven.apache.org:443 [repo.maven.apache.org/151.101.4.215] failed: Connection timed out",
    ];
    for cause in causes {
        let log = format!(
            "{GRADLE_HEAD}> Task :app:compileJava FAILED

FAILURE: Build failed with an exception.

* What went wrong:
Execution failed for task ':app:compileJava'.
> Could not resolve all files for configuration ':app:compileClasspath'.
   > Could not resolve com.google.guava:guava:32.1.2-jre.
     Required by:
         project :app
      > Could not resolve com.google.guava:guava:32.1.2-jre.
         > Could not get resource 'https://repo.maven.apache.org/maven2/com/google/guava/guava/32.1.2-jre/guava-32.1.2-jre.pom'.
{cause}
{GRADLE_TAIL}"
        );
        expect(&log, Category::DependencyDownload, true, "Could not");
    }
}

#[test]
fn gradle_missing_dependency_version_is_not_retried() {
    // The same chain with no network cause: the version does not exist.
    let log = format!(
        "{GRADLE_HEAD}> Task :app:compileJava FAILED

FAILURE: Build failed with an exception.

* What went wrong:
Execution failed for task ':app:compileJava'.
> Could not resolve all files for configuration ':app:compileClasspath'.
   > Could not find com.google.guava:guava:99.0-jre.
     Searched in the following locations:
       - https://repo.maven.apache.org/maven2/com/google/guava/guava/99.0-jre/guava-99.0-jre.pom
     Required by:
         project :app
{GRADLE_TAIL}"
    );
    expect(&log, Category::DependencyConflict, false, "Could not find");
}

#[test]
fn maven_transfer_failures_are_dependency_downloads() {
    let causes = [
        "status code: 502, reason phrase: Bad Gateway (502)",
        "transfer failed for https://repo.maven.apache.org/maven2/org/slf4j/slf4j-api/2.0.9/slf4j-api-2.0.9.jar, status: 503 Service Unavailable",
        "Connect to repo.maven.apache.org:443 [repo.maven.apache.org/151.101.4.215] failed: Connection timed out",
        "Read timed out",
    ];
    for cause in causes {
        let log = format!(
            "##[group]Run mvn -B verify
[INFO] Scanning for projects...
[INFO] Building core 1.4.0-SNAPSHOT
[INFO] Downloading from central: https://repo.maven.apache.org/maven2/org/slf4j/slf4j-api/2.0.9/slf4j-api-2.0.9.jar
[INFO] ------------------------------------------------------------------------
[INFO] BUILD FAILURE
[INFO] ------------------------------------------------------------------------
[INFO] Total time:  41.112 s
[ERROR] Failed to execute goal on project core: Could not resolve dependencies for project com.example:core:jar:1.4.0-SNAPSHOT: Could not transfer artifact org.slf4j:slf4j-api:jar:2.0.9 from/to central (https://repo.maven.apache.org/maven2): {cause} -> [Help 1]
[ERROR] 
[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.
[ERROR] Re-run Maven using the -X switch to enable full debug logging.
##[error]Process completed with exit code 1.
"
        );
        expect(
            &log,
            Category::DependencyDownload,
            true,
            "Could not transfer artifact",
        );
    }
}

#[test]
fn kotlin_daemon_crashes_are_infrastructure_and_its_heap_is_memory() {
    let crash = "> Task :app:compileKotlin FAILED
e: Daemon compilation failed: Could not connect to kotlin daemon
java.lang.RuntimeException: Could not connect to kotlin daemon
\tat org.jetbrains.kotlin.compilerRunner.GradleKotlinCompilerWork.compileWithDaemon(GradleKotlinCompilerWork.kt:214)

FAILURE: Build failed with an exception.

* What went wrong:
Execution failed for task ':app:compileKotlin'.
> Internal compiler error. See log for more details
";
    expect(
        &format!("{GRADLE_HEAD}{crash}{GRADLE_TAIL}"),
        Category::Infrastructure,
        true,
        "kotlin daemon",
    );
    let died = "> Task :app:compileKotlin FAILED
e: Daemon compilation failed: null
java.lang.Exception
Caused by: java.io.EOFException
The daemon has terminated unexpectedly on startup attempt #1 with error code: 0. The daemon process output:
    1. Kotlin compile daemon is ready
";
    expect(
        &format!("{GRADLE_HEAD}{died}{GRADLE_TAIL}"),
        Category::Infrastructure,
        true,
        "terminated unexpectedly",
    );
    let metaspace = "> Task :app:compileKotlin FAILED
e: java.lang.OutOfMemoryError: Metaspace
";
    expect(
        &format!("{GRADLE_HEAD}{metaspace}{GRADLE_TAIL}"),
        Category::OutOfMemory,
        true,
        "OutOfMemoryError",
    );
    let gone = "> Task :app:test
FAILURE: Build failed with an exception.

* What went wrong:
Gradle build daemon disappeared unexpectedly (it may have been killed or may have crashed)
";
    expect(
        &format!("{GRADLE_HEAD}{gone}{GRADLE_TAIL}"),
        Category::Infrastructure,
        true,
        "daemon disappeared",
    );
}

#[test]
fn genuine_java_failures_stay_genuine() {
    let compile = "> Task :app:compileJava FAILED
/home/runner/work/shop/shop/app/src/main/java/com/example/Cart.java:42: error: cannot find symbol
        return total.add(discount);
                         ^
  symbol:   variable discount
  location: class Cart
1 error

FAILURE: Build failed with an exception.

* What went wrong:
Execution failed for task ':app:compileJava'.
> Compilation failed; see the compiler error output for details.
";
    expect(
        &format!("{GRADLE_HEAD}{compile}{GRADLE_TAIL}"),
        Category::CompilationError,
        false,
        "cannot find symbol",
    );
    let tests = "> Task :app:test FAILED

CartTest > appliesDiscount() FAILED
    org.opentest4j.AssertionFailedError: expected: <90> but was: <100>
        at app//com.example.CartTest.appliesDiscount(CartTest.java:31)

12 tests completed, 1 failed

FAILURE: Build failed with an exception.

* What went wrong:
Execution failed for task ':app:test'.
> There were failing tests. See the report at: file:///home/runner/work/shop/shop/app/build/reports/tests/test/index.html
";
    let d = expect(
        &format!("{GRADLE_HEAD}{tests}{GRADLE_TAIL}"),
        Category::TestFailure,
        false,
        "appliesDiscount",
    );
    assert!(d
        .failing_tests
        .iter()
        .any(|t| t.contains("appliesDiscount")));
}
