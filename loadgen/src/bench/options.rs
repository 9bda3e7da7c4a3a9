//! `bench-all`'s command line: the flags and what they default to.

use std::path::PathBuf;

/// The usage line `-h`/`--help` answers with.
pub const USAGE: &str = "usage: bench-all [--quick] [--rounds N] [--out DIR] [--no-build] \
                            [--only id,..] [--redis URL] [--nats URL] [--postgres URL] [--no-compile] [--no-node] [--threads N]";

/// What one `bench-all` invocation was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Opts {
    /// `--quick`: 1 round, no capped-50k idle row, no compile cost.
    pub quick: bool,
    /// `--rounds N` per server and scenario (1 quick, 3 full; at most 9).
    pub rounds: usize,
    /// `--out DIR` for `results.md`, `results.json` and `chart.svg` (empty: the default,
    /// `<target>/bench-all`, filled in by the run).
    pub out: PathBuf,
    /// Build the servers and load generator first (`--no-build` skips it).
    pub build: bool,
    /// `--only a,b`: the scenario ids to run.
    pub only: Option<Vec<String>>,
    /// `--redis URL` of the Redis hub rows.
    pub redis: String,
    /// `--nats URL` of the NATS (JetStream) hub rows.
    pub nats: String,
    /// `--postgres URL` of the PostgreSQL hub rows.
    pub postgres: String,
    /// Measure compile cost (`--no-compile` skips it; quick mode never does).
    pub compile: bool,
    /// Run the third column, Pikku on Node (needs `node` and `npm`).
    pub node: bool,
    /// Run plain Node.js in the idle rows (needs `node`); `--no-node` drops it too.
    pub node_plain: bool,
    /// `--threads N`: load-generator worker threads.
    pub threads: usize,
    /// Server logs (under the target dir, not `--out`); filled in by the run.
    pub logs: PathBuf,
    /// Rebuild the table and chart from a previous `results.json` instead of running.
    pub from_json: Option<PathBuf>,
}

impl Opts {
    /// Parses the flags (without the program name); `Err` holds the message to print,
    /// the usage line for `--help`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Opts, String> {
        let mut o = Opts {
            quick: false,
            rounds: 0,
            out: PathBuf::new(),
            build: true,
            only: None,
            redis: "redis://127.0.0.1:6379".into(),
            nats: "nats://127.0.0.1:4222".into(),
            postgres: "postgres://postgres@127.0.0.1:5432/test".into(),
            compile: true,
            node: true,
            node_plain: true,
            threads: 2,
            logs: PathBuf::new(),
            from_json: None,
        };
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
            match a.as_str() {
                "--quick" => o.quick = true,
                "--full" => o.quick = false,
                "--no-build" => o.build = false,
                "--no-compile" => o.compile = false,
                "--no-node" => (o.node, o.node_plain) = (false, false),
                "--rounds" => o.rounds = val()?.parse().map_err(|e| format!("--rounds: {e}"))?,
                "--threads" => o.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
                "--out" => o.out = PathBuf::from(val()?),
                "--redis" => o.redis = val()?,
                "--nats" => o.nats = val()?,
                "--postgres" => o.postgres = val()?,
                "--only" => o.only = Some(val()?.split(',').map(str::to_owned).collect()),
                "--from-json" => o.from_json = Some(PathBuf::from(val()?)),
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if o.rounds == 0 {
            o.rounds = if o.quick { 1 } else { 3 };
        }
        o.rounds = o.rounds.min(9);
        if o.quick {
            o.compile = false;
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Opts, String> {
        Opts::parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn defaults_are_a_full_run_of_three_rounds() {
        let o = parse(&[]).unwrap();
        assert!(!o.quick && o.build && o.compile && o.node && o.node_plain);
        assert_eq!(o.rounds, 3);
        assert_eq!(o.threads, 2);
        assert_eq!(o.redis, "redis://127.0.0.1:6379");
        assert_eq!(o.nats, "nats://127.0.0.1:4222");
        assert_eq!(o.postgres, "postgres://postgres@127.0.0.1:5432/test");
        let o = parse(&["--nats", "nats://h:1", "--postgres", "postgres://u@h:2/d"]).unwrap();
        assert_eq!(
            (&*o.nats, &*o.postgres),
            ("nats://h:1", "postgres://u@h:2/d")
        );
        assert_eq!((o.only, o.from_json), (None, None));
    }

    #[test]
    fn quick_means_one_round_and_no_compile_cost() {
        let o = parse(&["--quick", "--no-node", "--only", "single,idle10k"]).unwrap();
        assert_eq!(o.rounds, 1);
        assert!(!o.compile && !o.node && !o.node_plain);
        assert_eq!(o.only, Some(vec!["single".into(), "idle10k".into()]));
    }

    #[test]
    fn rounds_are_capped_and_values_checked() {
        assert_eq!(parse(&["--rounds", "20"]).unwrap().rounds, 9);
        assert_eq!(parse(&["--rounds"]).unwrap_err(), "--rounds needs a value");
        assert!(
            parse(&["--threads", "x"])
                .unwrap_err()
                .starts_with("--threads: ")
        );
        assert_eq!(parse(&["--bogus"]).unwrap_err(), "unknown flag --bogus");
        assert_eq!(parse(&["--help"]).unwrap_err(), USAGE);
    }
}
