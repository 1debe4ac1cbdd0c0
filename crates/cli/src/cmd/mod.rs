//! One module per subcommand; each exposes its clap `Args` struct and `run(args) -> Result<ExitCode>`.

pub mod analyze;
pub mod ansible;
pub mod assess;
pub mod audit;
pub mod backtest;
pub mod bench;
pub mod bench_load;
pub mod db;
pub mod demo;
pub mod doctor;
pub mod eval;
pub mod flaky;
pub mod hosts;
pub mod import;
pub mod init;
pub mod progress;
pub mod purge;
pub mod report;
pub mod retry_dead;
pub mod rotate_key;
pub mod run;
pub mod serve;
pub mod signatures;
pub mod simulate;
pub mod token;
pub mod verdict;
