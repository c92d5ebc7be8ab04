//! Kurir's offline emulator of Microsoft Entra ID (and, later, Graph mail), in the spirit of
//! Azurite for Azure Storage.
//!
//! It serves Entra ID's v2.0 endpoints over HTTPS on loopback faithfully enough that MSAL for
//! Python, unmodified, acquires tokens from it, and answers every AADSTS error Kurir must
//! explain exactly as Microsoft does. The demo, Kurir's tests and users' CI run against it.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use kurir_emulator::{Emulator, EmulatorConfig, demo};
//! let emu = Emulator::start(EmulatorConfig::demo()).await?;
//! let authority = format!("{}/{}", emu.base_url(), demo::TENANT_ID);
//! # let _ = authority;
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: `entra/` holds one file per Entra endpoint or grant, `fixture.rs` the directory,
//! `keys.rs` signing and certificates, `tls.rs` the CA, `server.rs` listeners and the handle,
//! `ops.rs` the `/_emulator` test endpoints, `cli.rs` the `kurir emulator` command, `graph/` Graph
//! mail and `directory.rs` Graph's directory objects (apps, service principals, consent).

pub mod cli;
pub mod demo;
pub mod directory;
pub mod entra;
pub mod fixture;
pub mod graph;
pub mod keys;
pub mod ops;
pub mod server;
pub mod state;
pub mod tls;

pub use entra::devicecode::DeviceCodeHookError;
pub use entra::errors::EntraError;
pub use fixture::{Fixture, FixtureError};
pub use graph::PutMailError;
pub use graph::faults::GraphFaults;
pub use server::{AppCertificate, Emulator, EmulatorConfig, RunningEmulator, SigningKeyInfo};
pub use state::Faults;
