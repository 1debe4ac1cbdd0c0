//! One module per subcommand; each exposes `XArgs` (clap) and `run(XArgs) -> Result<ExitCode>`.

pub mod analyze;
pub mod serve;
