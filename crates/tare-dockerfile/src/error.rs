//! The crate's error type: every failure names the file, line and column, and carries the
//! source text so that miette can draw the offending line with a label.

use miette::{Diagnostic, NamedSource, SourceSpan};

/// An error from parsing, evaluating or expanding a Dockerfile.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    /// A problem at a known place in a Dockerfile.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Located(Box<LocatedError>),
    /// A word could not be expanded (`${v:?msg}`, a missing `}`, ...). Raised by
    /// [`crate::expand_word`]; [`crate::Stage::expand`] turns it into a located error.
    #[error("{message}")]
    Expand {
        /// What is wrong with the word, in BuildKit's words.
        message: String,
    },
    /// `--target` names no stage.
    #[error("target stage {name:?} could not be found")]
    UnknownTarget {
        /// The `--target` value as given.
        name: String,
    },
}

/// The details of [`Error::Located`].
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}:{line}:{column}: {message}")]
pub struct LocatedError {
    /// The file name given to [`crate::parse`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What went wrong, in lower case.
    pub message: String,
    #[source_code]
    source_code: NamedSource<String>,
    #[label("{label}")]
    span: SourceSpan,
    label: String,
}

impl Error {
    /// Builds a located error for the byte range `start..end` of `source`.
    pub(crate) fn at(
        source: &Source,
        start: usize,
        end: usize,
        message: impl Into<String>,
    ) -> Error {
        let message = message.into();
        let text = source.text.as_str();
        let start = floor_char_boundary(text, start.min(text.len()));
        let end = floor_char_boundary(text, end.clamp(start, text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let label = short_label(&message);
        Error::Located(Box::new(LocatedError {
            file: source.name.clone(),
            line,
            column,
            message,
            source_code: NamedSource::new(source.name.clone(), source.text.clone()),
            span: SourceSpan::new(start.into(), end - start),
            label,
        }))
    }

    /// The message without the location prefix.
    pub fn message(&self) -> String {
        match self {
            Error::Located(e) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// The offending lines with the error's label under them, drawn by miette without
    /// colours, for printing after the one-line message. `None` for unlocated errors.
    pub fn snippet(&self) -> Option<String> {
        let Error::Located(located) = self else {
            return None;
        };
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_context_lines(1);
        let mut out = String::new();
        handler.render_report(&mut out, located.as_ref()).ok()?;
        // The first line repeats the message; keep only the source excerpt.
        let excerpt: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.trim_start().starts_with('╭'))
            .collect();
        Some(excerpt.join("\n"))
    }

    /// The 1-based line of a located error.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Located(e) => Some(e.line),
            _ => None,
        }
    }
}

/// The label under the offending text: the message up to any parenthesised suggestion.
fn short_label(message: &str) -> String {
    match message.find(" (did you mean") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A Dockerfile's name and text, kept by the AST so that later errors can point into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub text: String,
}
