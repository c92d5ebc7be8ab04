//! Runs the emulator like `kurir emulator` does (until the lead wires that subcommand, the
//! Python fidelity tests start this example binary).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "emulator",
    about = "Offline Microsoft Entra ID emulator for Kurir"
)]
struct Cli {
    #[command(flatten)]
    args: kurir_emulator::cli::EmulatorArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kurir_emulator::cli::run(Cli::parse().args).await
}
