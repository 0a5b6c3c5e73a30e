//! dvsan terminal console.
//!
//! Placeholder: the ratatui console (live pool, trap tail, concurrent station tasks) is issue 6.
//! It builds so the workspace layout is complete, and says so when run.

fn main() {
    eprintln!("dvsan-console: not built yet (issue 6: terminal console)");
    std::process::exit(2);
}
