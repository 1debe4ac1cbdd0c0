//! Failing job logs as CI tools print them, one per kind of failure, for scenarios and the demo:
//! `JobSpec::new("test").fails(logs::sample("network").log)`.

/// A failing log and the failure it shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// pipeguard's category for it (snake_case, as in the taxonomy).
    pub category: &'static str,
    /// Whether a retry or a fix can heal it (otherwise a person must look).
    pub transient: bool,
    pub log: &'static str,
}

pub const SAMPLES: &[Sample] = &[
    Sample {
        category: "dependency_download",
        transient: true,
        log: "> npm ci\n\
npm ERR! code ECONNRESET\n\
npm ERR! errno ECONNRESET\n\
npm ERR! network request to https://registry.npmjs.org/react/-/react-18.2.0.tgz failed, reason: read ECONNRESET\n\
npm ERR! network This is a problem related to network connectivity.\n\
npm ERR! A complete log of this run can be found in: /home/runner/.npm/_logs/debug-0.log",
    },
    Sample {
        category: "network",
        transient: true,
        log: "$ ./scripts/smoke-test.sh\n\
+ curl -fsS https://staging.example.com/health\n\
curl: (56) Recv failure: Connection reset by peer\n\
Error: Process completed with exit code 56.",
    },
    Sample {
        category: "out_of_memory",
        transient: true,
        log: "> webpack --mode production\n\
<--- Last few GCs --->\n\
FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n\
 1: 0xb09980 node::Abort() [node]\n\
Aborted (core dumped)\n\
error Command failed with exit code 134.",
    },
    Sample {
        category: "disk_full",
        transient: true,
        log: "Step 7/12 : RUN apt-get update && apt-get install -y build-essential\n\
E: You don't have enough free space in /var/cache/apt/archives/.\n\
write /var/lib/docker/tmp/GetImageBlob123: no space left on device\n\
The command '/bin/sh -c apt-get update' returned a non-zero code: 100",
    },
    Sample {
        category: "service_unavailable",
        transient: true,
        log: "$ docker push registry.example.com/acme/api:3f78685\n\
The push refers to repository [registry.example.com/acme/api]\n\
5f70bf18a086: Preparing\n\
error parsing HTTP 503 response body: invalid character '<' looking for beginning of value\n\
received unexpected HTTP status: 503 Service Unavailable",
    },
    Sample {
        category: "compilation_error",
        transient: false,
        log: "   Compiling api v0.3.1 (/builds/acme/api)\n\
error[E0308]: mismatched types\n\
  --> src/handlers.rs:42:20\n\
   |\n\
42 |     let port: u16 = config.port;\n\
   |               ---   ^^^^^^^^^^^ expected `u16`, found `String`\n\
   |               |\n\
   |               expected due to this\n\
\n\
For more information about this error, try `rustc --explain E0308`.\n\
error: could not compile `api` (bin \"api\") due to 1 previous error",
    },
    Sample {
        category: "test_failure",
        transient: false,
        log: "running 12 tests\n\
test handlers::tests::health_is_ok ... ok\n\
test handlers::tests::rejects_bad_token ... FAILED\n\
\n\
failures:\n\
\n\
---- handlers::tests::rejects_bad_token stdout ----\n\
thread 'handlers::tests::rejects_bad_token' panicked at src/handlers.rs:88:9:\n\
assertion `left == right` failed\n\
  left: 200\n\
 right: 401\n\
\n\
failures:\n\
    handlers::tests::rejects_bad_token\n\
\n\
test result: FAILED. 11 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.02s\n\
\n\
error: test failed, to rerun pass `--bin api`",
    },
];

/// The sample of `category`.
pub fn sample(category: &str) -> Option<&'static Sample> {
    SAMPLES.iter().find(|s| s.category == category)
}
