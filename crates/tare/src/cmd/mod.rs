//! One module per subcommand.

pub mod analyze;
pub mod build;
pub mod check;
pub mod commit;
pub mod completion;
pub mod debug;
pub mod export;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod lint;
pub mod load;
pub mod login;
pub mod logout;
pub mod manage;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod squash;
pub mod tag;
