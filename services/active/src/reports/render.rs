//! A [`Table`] as file bytes: CSV (UTF-8, comma, a header line, RFC 4180 quoting) or XLSX
//! (one worksheet, bold header, numbers as numbers, text as text).

use phoenix_common::Result;
use rust_xlsxwriter::{Format, Workbook};

use super::{Cell, Table};

/// The table as CSV.
pub fn csv(table: &Table) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(table.header).map_err(anyhow::Error::from)?;
    for row in &table.rows {
        w.write_record(row.iter().map(|c| match c {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Empty => String::new(),
        }))
        .map_err(anyhow::Error::from)?;
    }
    Ok(w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?)
}

/// The table as an XLSX workbook with one sheet.
pub fn xlsx(table: &Table) -> Result<Vec<u8>> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = book.add_worksheet();
    sheet.set_name(table.sheet).map_err(anyhow::Error::from)?;
    for (c, h) in table.header.iter().enumerate() {
        sheet.write_string_with_format(0, col(c), *h, &bold).map_err(anyhow::Error::from)?;
    }
    for (r, row) in table.rows.iter().enumerate() {
        let r = u32::try_from(r + 1).map_err(anyhow::Error::from)?;
        for (c, cell) in row.iter().enumerate() {
            match cell {
                Cell::Text(s) => {
                    sheet.write_string(r, col(c), s).map_err(anyhow::Error::from)?;
                }
                #[allow(clippy::cast_precision_loss)] // counts, far below 2^53
                Cell::Int(n) => {
                    sheet.write_number(r, col(c), *n as f64).map_err(anyhow::Error::from)?;
                }
                Cell::Empty => {}
            }
        }
    }
    Ok(book.save_to_buffer().map_err(anyhow::Error::from)?)
}

fn col(c: usize) -> u16 {
    u16::try_from(c).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_leaves_empty_cells_empty() {
        let t = Table {
            sheet: "T",
            header: &["a", "b", "c"],
            rows: vec![vec![Cell::Text("x, \"y\"".into()), Cell::Int(3), Cell::Empty]],
        };
        assert_eq!(String::from_utf8(csv(&t).unwrap()).unwrap(), "a,b,c\n\"x, \"\"y\"\"\",3,\n");
        assert!(xlsx(&t).unwrap().starts_with(b"PK"), "a zip container");
    }
}
