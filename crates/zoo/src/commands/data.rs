//! `zoo data fetch`: a data set's official archives, checked and unpacked into the zoo's data cache.

use anyhow::Result;
use pixel_data::datasets::data_cache_dir;
use pixel_zoo::data_fetch::{fetch, DataSource};
use pixel_zoo::Zoo;

use crate::cli::{DataCommand, DataFetchArgs};

pub fn run(zoo: &Zoo, command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Fetch(args) => fetch_data(zoo, args),
    }
}

fn fetch_data(zoo: &Zoo, args: DataFetchArgs) -> Result<()> {
    let DataFetchArgs { dataset, url, force } = args;
    let mut source = DataSource::official(dataset.name()).expect("every DataSetName has a source");
    if let Some(url) = url.as_deref() {
        source = source.with_mirror(url);
    }
    let cache = data_cache_dir();
    if source.is_fetched(&cache) && !force {
        eprintln!("{}: already in {} (--force downloads it again)", source.name, cache.join(&source.name).display());
        return Ok(());
    }
    let report = fetch(&source, &cache, zoo.resolver.progress)?;
    for f in &report.downloaded {
        eprintln!("{}: {} bytes, MD5 {} (the published one), sha256 {}", f.url, f.bytes, f.md5, f.sha256);
    }
    eprintln!(
        "{}: {} in {} (recorded in {})",
        report.dataset,
        report.unpacked.join(", "),
        report.dir.display(),
        pixel_zoo::data_fetch::RECORD
    );
    Ok(())
}
