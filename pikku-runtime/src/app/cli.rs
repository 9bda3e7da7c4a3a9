//! Pikku's command-line commands: writing the TypeScript client.

use crate::client_ts::{self, TsClientConfig, TsClientError};

use super::Pikku;

/// The command-line flag that writes the TypeScript client: see [`Pikku::handle_cli_args`].
pub const EMIT_TS_CLIENT_FLAG: &str = "--emit-ts-client";
const EMIT_TS_CLIENT_FLAG_EQ: &str = "--emit-ts-client=";

impl<S: Send + Sync + 'static> Pikku<S> {
    /// The TypeScript client of this app's routes (see [`client_ts`](crate::client_ts)); its
    /// default base URL is the first of the OpenAPI config's `servers`, if any.
    pub fn typescript_client(&self) -> Result<String, TsClientError> {
        client_ts::typescript(
            &self.routes,
            &TsClientConfig {
                default_base_url: self.default_base_url(),
            },
        )
    }

    /// Runs Pikku's command-line commands, if the process was started with one; call it in
    /// `main` before serving, and exit when it returns `Ok(true)`:
    ///
    /// - `--emit-ts-client <path>` (or `--emit-ts-client=<path>`): writes the TypeScript
    ///   client of the app's routes ([`typescript_client`](Self::typescript_client)) to
    ///   `path`.
    ///
    /// Other arguments are left to the app. Returns `Ok(false)` when there was no command.
    ///
    /// ```no_run
    /// # struct Services;
    /// # fn main() -> std::io::Result<()> {
    /// let pikku = pikku::Pikku::new(Services);
    /// if pikku.handle_cli_args()? {
    ///     return Ok(()); // e.g. `cargo run -- --emit-ts-client web/pikku-fetch.gen.ts`
    /// }
    /// // ... serve
    /// # Ok(()) }
    /// ```
    pub fn handle_cli_args(&self) -> std::io::Result<bool> {
        self.handle_cli_args_from(std::env::args_os().skip(1))
    }

    /// [`handle_cli_args`](Self::handle_cli_args) with the given arguments (without the
    /// program name).
    pub fn handle_cli_args_from<A: Into<std::ffi::OsString>>(
        &self,
        args: impl IntoIterator<Item = A>,
    ) -> std::io::Result<bool> {
        let mut args = args.into_iter().map(Into::into);
        let mut target: Option<std::path::PathBuf> = None;
        while let Some(arg) = args.next() {
            let text = arg.to_string_lossy();
            if text == EMIT_TS_CLIENT_FLAG {
                let path = args.next().ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{EMIT_TS_CLIENT_FLAG} needs a path"),
                    )
                })?;
                target = Some(path.into());
            } else if let Some(path) = text.strip_prefix(EMIT_TS_CLIENT_FLAG_EQ) {
                target = Some(path.into());
            }
        }
        let Some(path) = target else {
            return Ok(false);
        };
        let ts = self.typescript_client().map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, ts)?;
        eprintln!("pikku: wrote the TypeScript client to {}", path.display());
        Ok(true)
    }

    #[cfg(feature = "openapi")]
    fn default_base_url(&self) -> String {
        self.openapi.servers.first().cloned().unwrap_or_default()
    }

    #[cfg(not(feature = "openapi"))]
    fn default_base_url(&self) -> String {
        String::new()
    }
}
