//! One module per subcommand.

pub mod analyze;
pub mod binfmt;
pub mod build;
pub mod cache;
pub mod check;
pub mod commit;
pub mod completion;
pub mod debug;
pub mod detach;
pub mod diff;
pub mod exec;
pub mod export;
pub mod history;
pub mod images;
pub mod import;
pub mod info;
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
pub mod slim;
pub mod squash;
pub mod system;
pub mod tag;

/// `--format` of the reports (`analyze`, `lint`): text for people, json for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}
