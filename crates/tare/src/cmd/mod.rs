//! One module per subcommand.

pub mod debug;
pub mod ps;
pub mod rm;
pub mod run;
