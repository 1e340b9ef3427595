//! Located configuration problems, collected rather than returned one by one.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// The dotted path of the field, e.g. `routes[2].fields.price`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A collector of problems for one file.
#[derive(Debug)]
pub struct Problems<'s> {
    file: PathBuf,
    src: &'s str,
    list: Vec<Problem>,
}

impl<'s> Problems<'s> {
    /// Start collecting for `file` whose text is `src`.
    pub fn new(file: &Path, src: &'s str) -> Self {
        Problems {
            file: file.to_owned(),
            src,
            list: Vec::new(),
        }
    }

    /// Record a problem at a byte span of the source (or nowhere in particular).
    pub fn at(
        &mut self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = span.map_or((0, 0), |s| super::source::line_col(self.src, s.start));
        self.list.push(Problem {
            file: self.file.clone(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        });
    }

    /// The source text.
    pub fn src(&self) -> &'s str {
        self.src
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems found so far.
    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }
}

/// The error of the config layer: the complete list of problems found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {message}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The file was read and has problems.
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// Every problem (a read error counts as one).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Read { file, message } => vec![Problem {
                file: file.clone(),
                line: 0,
                column: 0,
                field: String::new(),
                message: message.clone(),
            }],
            ConfigError::Invalid(p) => p.clone(),
        }
    }
}

fn render(problems: &[Problem]) -> String {
    let mut s = format!("{} problem(s):", problems.len());
    for p in problems {
        s.push_str("\n  ");
        s.push_str(&p.to_string());
    }
    s
}
