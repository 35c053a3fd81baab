//! How `ringside top` draws its state: a status line, the `stat` table
//! (its columns and cells from `render`, so both read the same), and the
//! panel of refusals and errors, those of the last interval in bold.

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, Paragraph, Row as TableRow, Table};
use ratatui::Frame;

use super::render::{cells, headers};
use super::top_state::{Status, Top};
use crate::config::SortBy;

/// Lines of the refusals and errors panel, its borders included.
const PANEL_HEIGHT: u16 = 12;

pub(super) fn draw(frame: &mut Frame, top: &Top) {
    let [status, table, panel] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(PANEL_HEIGHT),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(status_lines(top)), status);
    frame.render_widget(stat_table(top), table);
    frame.render_widget(log_panel(top), panel);
}

/// What is shown and how to change it, then how the last scrape went.
fn status_lines(top: &Top) -> Vec<Line<'static>> {
    let (sorted, other) = match top.sort {
        SortBy::Rps => ("RPS", "p99"),
        SortBy::P99 => ("LATENCY_P99", "rps"),
    };
    let every = humantime::format_duration(top.interval);
    let title = Line::from(vec![
        Span::styled("ringside top ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "{}  every {every}  sorted by {sorted} (s: by {other}, q: quit)",
            top.admin
        )),
    ]);
    let status = match &top.status {
        Status::Waiting => Span::raw("connecting..."),
        Status::Scraped(at) if top.rows.is_empty() => Span::raw(format!("scraped {at}")),
        Status::Scraped(at) => Span::raw(format!("updated {at}")),
        Status::Unreachable(why) => Span::styled(
            format!("{why}; retrying every {every}"),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    };
    vec![title, Line::from(status)]
}

fn stat_table(top: &Top) -> Table<'static> {
    let headers = headers(false);
    let rows: Vec<Vec<String>> = top.rows.iter().map(|row| cells(row, false)).collect();
    // Each column as wide as its widest cell, as `stat` prints it.
    let widths: Vec<Constraint> = (headers.iter().enumerate())
        .map(|(column, header)| {
            let widest = rows.iter().map(|cells| cells[column].chars().count());
            Constraint::Length(widest.max().unwrap_or(0).max(header.len()) as u16)
        })
        .collect();
    let title = match (&top.status, top.rows.is_empty()) {
        (Status::Scraped(_), true) => " routes (measuring: the first interval is not over) ",
        _ => " routes ",
    };
    Table::new(rows.into_iter().map(TableRow::new), widths)
        .header(TableRow::new(headers).style(Style::new().add_modifier(Modifier::BOLD)))
        .column_spacing(3)
        .block(Block::bordered().title(title))
}

fn log_panel(top: &Top) -> List<'static> {
    let items = top.log.iter().map(|(at, change, fresh)| {
        let line = format!(
            "{at}  +{:<6} {:<22} {}",
            change.count, change.kind, change.detail
        );
        let style = match fresh {
            true => Style::new().add_modifier(Modifier::BOLD),
            false => Style::new().fg(Color::DarkGray),
        };
        ListItem::new(line).style(style)
    });
    let title = match top.log.is_empty() {
        true => " refusals and errors: none yet ".to_string(),
        false => " refusals and errors (bold: the last interval) ".to_string(),
    };
    List::new(items).block(Block::bordered().title(title))
}
