//! The one way the run folder's CSV files (`agent-samples.csv`, `hosts.csv`,
//! `generator.csv`) are written and read: a header line, then comma-separated numbers (and
//! host addresses). Readers check the header and the width of every line, and every error
//! names the file and the line.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::Error;

/// Writes a CSV file line by line.
#[derive(Debug)]
pub(crate) struct CsvWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl CsvWriter {
    /// Creates the file with its header.
    pub(crate) fn create(path: &Path, header: &str) -> Result<Self, Error> {
        let mut out = BufWriter::new(File::create(path).map_err(|e| Error::io(path, e))?);
        writeln!(out, "{header}").map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_owned(),
            out,
        })
    }

    /// Appends one line.
    pub(crate) fn line(&mut self, fields: std::fmt::Arguments<'_>) -> Result<(), Error> {
        writeln!(self.out, "{fields}").map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes.
    pub(crate) fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// A CSV file's rows: (line number, fields).
pub(crate) type Rows = Vec<(usize, Vec<String>)>;

/// Splits a CSV file into rows of fields after checking its header against the accepted ones
/// (newest first); returns the index of the header found. Errors name the line.
pub(crate) fn read_rows(path: &Path, headers: &[&str]) -> Result<(usize, Rows), Error> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut rows = Vec::new();
    let mut version = 0;
    let mut width = 0;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if i == 0 {
            version = headers
                .iter()
                .position(|h| line.trim() == *h)
                .ok_or_else(|| Error::format(path, format!("line 1: expected header `{}`", headers[0])))?;
            width = headers[version].split(',').count();
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<String> = line.split(',').map(str::to_owned).collect();
        if fields.len() != width {
            return Err(Error::format(
                path,
                format!("line {}: {} fields, expected {width}", i + 1, fields.len()),
            ));
        }
        rows.push((i + 1, fields));
    }
    Ok((version, rows))
}

/// Field `name` of line `line`, parsed.
pub(crate) fn field<T: std::str::FromStr>(path: &Path, line: usize, name: &str, v: &str) -> Result<T, Error> {
    v.parse()
        .map_err(|_| Error::format(path, format!("line {line}: {name} `{v}` is not a number")))
}
