//! One module per subcommand.

pub mod build;
pub mod debug;
pub mod ps;
pub mod rm;
pub mod run;
pub mod check;
pub mod export;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod prune;
pub mod rmi;
pub mod save;
pub mod tag;
pub mod login;
pub mod logout;
pub mod pull;
pub mod push;
pub mod analyze;
pub mod lint;
pub mod squash;
