//! The page map's state (no ratatui): how RAM divides into screen cells for a terminal size,
//! what each cell holds, which allocations cover a run of pages, and how the page cursor
//! moves over the cells. `views::pagemap` draws it.
//!
//! Pages are counted from the snapshot's `ram_base`; allocations outside
//! `[ram_base, ram_base + ram_pages)` are clipped.

use crate::model::{Entry, Snapshot};
use crate::riscv::PAGE_SIZE;

/// Rows the screen layout uses around the page-map grid: header, tabs and footer lines (3),
/// the body block's borders (2) and the legend/cursor-info lines (3). Columns: borders (2).
/// `views::pagemap` draws with exactly this layout (a rendering test checks it).
pub const PAGEMAP_CHROME: (u16, u16) = (2, 8);

/// How the page map divides RAM into screen cells: `pages_per_cell` consecutive pages per cell,
/// `cols` cells per row, row-major from `ram_base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageGrid {
    pub cols: u16,
    pub rows: u16,
    pub pages_per_cell: u64,
    /// Cells actually used: ceil(ram_pages / pages_per_cell).
    pub cells: u64,
}

impl PageGrid {
    /// The densest grid of at most `width` × `height` cells that shows all `ram_pages`.
    /// A zero-sized area or no RAM gives a grid with no cells.
    pub fn fit(width: u16, height: u16, ram_pages: u64) -> PageGrid {
        let area = u64::from(width) * u64::from(height);
        if area == 0 || ram_pages == 0 {
            return PageGrid {
                cols: 0,
                rows: 0,
                pages_per_cell: 1,
                cells: 0,
            };
        }
        let pages_per_cell = ram_pages.div_ceil(area).max(1);
        let cells = ram_pages.div_ceil(pages_per_cell);
        let cols = (u64::from(width)).min(cells) as u16;
        let rows = cells.div_ceil(u64::from(cols)) as u16;
        PageGrid {
            cols,
            rows,
            pages_per_cell,
            cells,
        }
    }

    /// The grid the page map draws on a `(width, height)` terminal (`PAGEMAP_CHROME` taken off).
    pub fn for_terminal((width, height): (u16, u16), ram_pages: u64) -> PageGrid {
        PageGrid::fit(
            width.saturating_sub(PAGEMAP_CHROME.0),
            height.saturating_sub(PAGEMAP_CHROME.1),
            ram_pages,
        )
    }

    /// The cursor page after moving by `dx` cells / `dy` rows from `page`: vertical moves keep
    /// the column and stop at the first/last row that has a cell there; horizontal moves run
    /// through rows and stop at the ends. The result is the first page of its cell; a grid
    /// without cells leaves `page` as it is.
    pub fn move_cursor(&self, page: u64, dx: i64, dy: i64) -> u64 {
        if self.cells == 0 {
            return page;
        }
        let (cell, cols, last) = (
            page / self.pages_per_cell,
            u64::from(self.cols),
            self.cells - 1,
        );
        let cell = if dy > 0 {
            cell + dy.unsigned_abs().min((last - cell) / cols) * cols
        } else if dy < 0 {
            cell - dy.unsigned_abs().min(cell / cols) * cols
        } else if dx > 0 {
            cell.saturating_add(dx.unsigned_abs()).min(last)
        } else {
            cell.saturating_sub(dx.unsigned_abs())
        };
        cell * self.pages_per_cell
    }

    /// `page` clamped to the last of `ram_pages` and moved to the first page of its cell.
    pub fn clamp_cursor(&self, page: u64, ram_pages: u64) -> u64 {
        let page = page.min(ram_pages.saturating_sub(1));
        if self.pages_per_cell > 0 {
            page - page % self.pages_per_cell
        } else {
            page
        }
    }
}

/// What the page map knows about one cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellInfo {
    /// Pages of the cell covered by some allocation.
    pub owned: u64,
    /// Pages in the cell (the last cell may be short).
    pub pages: u64,
    /// Owner with the most pages in the cell (lowest pid on ties), if any.
    pub owner: Option<u32>,
    /// More than one owner has pages here.
    pub mixed: bool,
    /// Pages of the cell below the allocator's base (firmware, kernel image): never allocated.
    pub reserved: u64,
}

/// Ownership of every cell of `grid` in snapshot `s`.
pub fn page_cells(s: &Snapshot, grid: &PageGrid) -> Vec<CellInfo> {
    let (base, ram) = (s.header.ram_base, s.header.ram_pages);
    let reserved_pages = s.header.alloc_base.saturating_sub(base) / PAGE_SIZE;
    let ppc = grid.pages_per_cell;
    let mut per_cell: Vec<Vec<(u32, u64)>> = vec![Vec::new(); grid.cells as usize];
    for e in s.entries.iter() {
        if e.pa < base {
            continue;
        }
        let first = (e.pa - base) / PAGE_SIZE;
        let end = first.saturating_add(e.npages).min(ram);
        let mut p = first;
        while p < end {
            let cell = p / ppc;
            let cell_end = ((cell + 1) * ppc).min(end);
            let Some(owners) = per_cell.get_mut(cell as usize) else {
                break; // a grid made for less RAM than this snapshot has
            };
            match owners.iter_mut().find(|(o, _)| *o == e.owner) {
                Some((_, n)) => *n += cell_end - p,
                None => owners.push((e.owner, cell_end - p)),
            }
            p = cell_end;
        }
    }
    per_cell
        .into_iter()
        .enumerate()
        .map(|(i, owners)| {
            let start = i as u64 * ppc;
            let pages = ppc.min(ram.saturating_sub(start));
            let owner = owners
                .iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|(o, _)| *o);
            CellInfo {
                owned: owners.iter().map(|(_, n)| n).sum(),
                pages,
                owner,
                mixed: owners.len() > 1,
                reserved: reserved_pages.saturating_sub(start).min(pages),
            }
        })
        .collect()
}

/// The allocations of snapshot `s` overlapping pages `[first, first + n)`, by pa.
pub fn entries_in_pages(s: &Snapshot, first: u64, n: u64) -> Vec<&Entry> {
    let base = s.header.ram_base;
    let lo = base.saturating_add(first.saturating_mul(PAGE_SIZE));
    let hi = lo.saturating_add(n.saturating_mul(PAGE_SIZE));
    let mut v: Vec<&Entry> = s
        .entries
        .iter()
        .filter(|e| e.pa < hi && e.pa.saturating_add(e.npages * PAGE_SIZE) > lo)
        .collect();
    v.sort_by_key(|e| e.pa);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::sample;

    #[test]
    fn page_grid_fits_and_cells_show_owners() {
        assert_eq!(PageGrid::fit(78, 16, 32768).pages_per_cell, 27); // ceil(32768 / 1248)
        let g = PageGrid::fit(10, 10, 50);
        assert_eq!((g.cols, g.rows, g.pages_per_cell, g.cells), (10, 5, 1, 50));
        assert_eq!(PageGrid::fit(0, 5, 100).cells, 0);
        assert_eq!(PageGrid::fit(5, 5, 0).cells, 0);

        let mut s = sample();
        s.header.ram_pages = 16;
        s.header.ram_base = 0x8030_0000;
        // pages 0-3 kernel, 4 pid 1, 5-6 pid 7, 7-9 pid 7, 10-11 pid 7; 12-15 nothing
        let g = PageGrid::for_terminal((4 + 2, 4 + 8), s.header.ram_pages); // a 4×4 grid, one page per cell
        assert_eq!((g.cols, g.pages_per_cell, g.cells), (4, 1, 16));
        let cells = page_cells(&s, &g);
        assert_eq!(cells[0].owner, Some(0));
        assert_eq!(cells[4].owner, Some(1));
        assert_eq!(cells[11].owner, Some(7));
        assert_eq!(cells[12].owner, None);
        assert!(cells.iter().all(|c| !c.mixed && c.pages == 1));

        // Two pages per cell: cell 2 holds page 4 (pid 1) and 5 (pid 7).
        let g = PageGrid::for_terminal((4 + 2, 2 + 8), s.header.ram_pages);
        assert_eq!(g.pages_per_cell, 2);
        let cells = page_cells(&s, &g);
        assert!(cells[2].mixed);
        assert_eq!((cells[2].owned, cells[2].owner), (2, Some(1))); // tie: lowest pid
        assert_eq!(cells[6].owner, None);
    }
}
