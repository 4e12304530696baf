//! `cargo run -p kindling-butane --example butane -- [butane args]`: the CLI without the
//! kindling binary.
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: kindling_butane::cli::ButaneArgs,
}

fn main() {
    let cli = Cli::parse();
    std::process::exit(kindling_butane::cli::run(cli.args));
}
