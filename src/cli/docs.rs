//! `email-operator docs`: the generated pages of `docs/` — the API reference (from the CRDs)
//! and troubleshooting (from the reason catalog) — printed, or written where they belong.

use email_operator::crd::reference;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `docs`.
#[derive(clap::Args)]
pub struct DocsArgs {
    /// The page to print (with --out-dir, the only page written).
    #[arg(value_enum, required_unless_present = "out_dir")]
    page: Option<Page>,
    /// Write the pages under this directory (the repository's `docs/`) instead of printing.
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

/// The generated pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Page {
    /// The API reference (`reference/api.md`).
    Api,
    /// Troubleshooting by reason (`operations/troubleshooting.md`).
    Troubleshooting,
}

impl Page {
    fn path(self) -> &'static str {
        match self {
            Page::Api => reference::API_PAGE,
            Page::Troubleshooting => reference::TROUBLESHOOTING_PAGE,
        }
    }
}

/// Prints or writes the pages.
pub fn run(args: DocsArgs) -> ExitCode {
    let pages = reference::pages()
        .into_iter()
        .filter(|(path, _)| args.page.is_none_or(|p| p.path() == *path));
    let Some(dir) = args.out_dir else {
        pages.for_each(|(_, text)| print!("{text}"));
        return ExitCode::SUCCESS;
    };
    for (path, text) in pages {
        let file = dir.join(path);
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&file, text));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
