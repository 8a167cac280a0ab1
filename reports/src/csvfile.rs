//! The one way the run folder's CSV files (`agent-samples.csv`, `hosts.csv`,
//! `generator.csv`, `failures.csv`) are written and read, with the csv crate (quoting and
//! parsing are its business): a header line, then one record a line. Readers check the header
//! and the width of every record, and every error names the file and the line.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::Error;

/// Writes a CSV file record by record.
#[derive(Debug)]
pub(crate) struct CsvWriter {
    path: PathBuf,
    out: csv::Writer<File>,
}

impl CsvWriter {
    /// Creates the file with its header (`a,b,c`).
    pub(crate) fn create(path: &Path, header: &str) -> Result<Self, Error> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = Self {
            path: path.to_owned(),
            out: csv::WriterBuilder::new().has_headers(false).from_writer(file),
        };
        w.record(header.split(','))?;
        Ok(w)
    }

    /// Appends one record.
    pub(crate) fn record<I, T>(&mut self, fields: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.out.write_record(fields).map_err(|e| self.error(e))
    }

    /// Flushes.
    pub(crate) fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }

    fn error(&self, e: csv::Error) -> Error {
        match e.into_kind() {
            csv::ErrorKind::Io(e) => Error::io(&self.path, e),
            other => Error::format(&self.path, format!("{other:?}")),
        }
    }
}

/// A CSV file's rows: (line number, fields).
pub(crate) type Rows = Vec<(usize, Vec<String>)>;

/// Reads a CSV file's records after checking its header against the accepted ones (newest
/// first); returns the index of the header found. Errors name the line.
pub(crate) fn read_rows(path: &Path, headers: &[&str]) -> Result<(usize, Rows), Error> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // Widths are checked here, against the header, so that the error names the line.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(file);
    let mut rows = Vec::new();
    let mut version = None;
    let mut width = 0;
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            match e.into_kind() {
                csv::ErrorKind::Io(e) => Error::io(path, e),
                csv::ErrorKind::Utf8 { .. } => Error::format(path, format!("line {line}: not UTF-8")),
                other => Error::format(path, format!("line {line}: {other:?}")),
            }
        })?;
        let line = record.position().map_or(0, csv::Position::line) as usize;
        let fields: Vec<String> = record.iter().map(str::to_owned).collect();
        if version.is_none() {
            let found = fields.join(",");
            let v = headers
                .iter()
                .position(|h| found.trim() == *h)
                .ok_or_else(|| Error::format(path, format!("line 1: expected header `{}`", headers[0])))?;
            width = headers[v].split(',').count();
            version = Some(v);
            continue;
        }
        if fields.iter().all(|f| f.trim().is_empty()) && fields.len() <= 1 {
            continue;
        }
        if fields.len() != width {
            return Err(Error::format(
                path,
                format!("line {line}: {} fields, expected {width}", fields.len()),
            ));
        }
        rows.push((line, fields));
    }
    match version {
        Some(v) => Ok((v, rows)),
        None => Err(Error::format(path, format!("line 1: expected header `{}`", headers[0]))),
    }
}

/// Field `name` of line `line`, parsed.
pub(crate) fn field<T: std::str::FromStr>(path: &Path, line: usize, name: &str, v: &str) -> Result<T, Error> {
    v.parse()
        .map_err(|_| Error::format(path, format!("line {line}: {name} `{v}` is not a number")))
}
