//! The README runs as written. Every ```sh block of `README.md` is run, in order, each in
//! its own `bash` (with `-e -o pipefail`, so a command that fails fails the block), from the
//! repository's root, against the agent the README's `scripts/run.sh` starts.
//!
//! They run in private namespaces (network, mount, PID; a user namespace when not root),
//! so the README's fixed addresses and paths are used as written without touching the
//! machine: the agent listens on 127.0.0.1:8099 of a network of its own, `/tmp` is a
//! private tmpfs (the demo token, the agent's state; a checkout under /tmp is bound in), a pcscd of its own serves vpcd's
//! readers on Debian's ports 35963/35964 at the usual `/run/pcscd` socket, and when the test
//! ends every process it started ends with the namespace.
//!
//! What the README marks, in an HTML comment right above a block:
//! - `<!-- readme-test: starts the agent -->`: the block (`scripts/run.sh`) is started in
//!   the background, and the blocks after it run once it printed its banner. `cargo` is a
//!   stand-in there that builds nothing: `cargo test` has just built `target/debug/beid-agent`,
//!   and a `cargo build` from inside the tests would rebuild it with other features.
//! - `<!-- not run: why -->`: the block is not run; the README says so in a visible note
//!   just above the comment. Few blocks may be: today `scripts/test.sh` (the suite this test
//!   belongs to) and the `sudo` lines that change the machine's pcscd (this test starts a
//!   pcscd of its own in their place).
//!
//! The demo token's file is read from what the agent prints: where the README's own
//! example of that banner names another file, the block is run with the printed one.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{is_root, vpcd_reader_conf, wait_until, AGENT};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const AGENT_MARK: &str = "readme-test: starts the agent";
const NOT_RUN: &str = "not run:";
/// The most blocks the README may leave out of this test.
const MAX_NOT_RUN: usize = 3;
/// vpcd's first port in Debian's `/etc/reader.conf.d/vpcd`.
const VPCD_PORT: u16 = 35963;
/// How long all blocks together may take (each is limited to a minute).
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// One ```sh block of the README.
#[derive(Debug)]
struct Block {
    /// Its first line's number in README.md (1-based), for messages.
    line: usize,
    text: String,
    /// The HTML comment right above its fence, if any.
    mark: Option<String>,
    /// The paragraph above that comment: the visible note a `not run` needs.
    note: Option<String>,
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap()
}

/// The README's ```sh blocks.
fn sh_blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        if lines[at].trim() != "```sh" {
            at += 1;
            continue;
        }
        let above = |from: usize| {
            lines[..from]
                .iter()
                .rposition(|line| !line.trim().is_empty())
        };
        let comment = above(at).filter(|&i| lines[i].trim_start().starts_with("<!--"));
        let mark = comment.map(|i| {
            lines[i]
                .trim()
                .trim_start_matches("<!--")
                .trim_end_matches("-->")
                .trim()
                .to_owned()
        });
        let note = comment.and_then(above).map(|last| {
            let first = lines[..last]
                .iter()
                .rposition(|line| line.trim().is_empty())
                .map_or(0, |blank| blank + 1);
            lines[first..=last].join(" ")
        });
        let end = (at + 1..lines.len())
            .find(|&i| lines[i].trim() == "```")
            .unwrap_or_else(|| panic!("README.md:{}: the block never ends", at + 1));
        blocks.push(Block {
            line: at + 2,
            text: lines[at + 1..end].join("\n") + "\n",
            mark,
            note,
        });
        at = end + 1;
    }
    blocks
}

/// The demo token's file as the README's example banner shows it.
fn documented_token_file(readme: &str) -> String {
    token_file(readme).expect("the README shows the banner of scripts/run.sh with its demo token")
}

/// The file named on a `demo token:` line.
fn token_file(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("demo token:"))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// The banner's lines as labels (`kiosk page:`, `demo token:`, ...): the README's example
/// must show the lines the agent prints.
fn banner_labels(banner: &str) -> Vec<String> {
    banner
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The script that runs inside the namespaces: sets them up, starts the agent and pcscd,
/// waits for both, then runs every block and records its output and exit status.
fn driver(work: &Path) -> String {
    format!(
        r#"set -u
work='{work}'
fail() {{ echo "$*" >"$work/setup-error"; exit 0; }}
# Waits, bounded, for a condition on processes this script does not control.
wait_for() {{
  local tenths=$(($1 * 10)); shift
  while ! "$@"; do
    tenths=$((tenths - 1))
    [ "$tenths" -gt 0 ] || return 1
    sleep 0.1
  done
}}
ip link set lo up || fail "no loopback in the private network"
# The private /tmp hides the host's; a checkout (and so this script's folder) that lives
# under /tmp is bound back in through a handle on the host's /tmp opened first (taken as
# it is: mount would otherwise resolve the handle to its name, the private /tmp).
exec 3</tmp
mount -t tmpfs -o mode=1777 tmpfs /tmp || fail "cannot mount a private /tmp"
for path in '{root}' "$work"; do
  case "$path" in
    /tmp/?*)
      top=${{path#/tmp/}}; top=${{top%%/*}}
      [ -e "/tmp/$top" ] && continue
      mkdir "/tmp/$top" && mount --no-canonicalize --bind "/proc/self/fd/3/$top" "/tmp/$top" ||
        {{ echo "cannot reach $path under the private /tmp" >&2; exit 0; }}
      ;;
  esac
done
exec 3<&-
mkdir -p /run/pcscd && mount -t tmpfs tmpfs /run/pcscd || fail "cannot mount a private /run/pcscd"
export XDG_RUNTIME_DIR=/tmp/runtime
mkdir -m 0700 "$XDG_RUNTIME_DIR"
export PATH="$work/bin:$PATH"
cd '{root}'
bash "$work/agent.sh" >"$work/agent.out" 2>"$work/agent.err" </dev/null &
pcscd --foreground -c "$work/reader.conf.d" >"$work/pcscd.log" 2>&1 </dev/null &
wait_for 120 grep -q "demo token:" "$work/agent.out" || fail "the agent printed no banner"
wait_for 10 test -S /run/pcscd/pcscd.comm || fail "pcscd did not start"
wait_for 10 sh -c "ss -Hltn 'sport = :{port}' | grep -q ." || fail "vpcd does not listen"
README_TOKEN=$(sed -n 's/^ *demo token: *\([^ ]*\).*/\1/p' "$work/agent.out")
export README_TOKEN
for block in "$work"/block-*.sh; do
  timeout 60 bash -e -o pipefail "$block" >"${{block%.sh}}.out" 2>&1 </dev/null
  echo $? >"${{block%.sh}}.status"
done
"#,
        work = work.display(),
        root = ROOT,
        port = VPCD_PORT,
    )
}

#[test]
fn every_command_block_of_the_readme_runs_as_written() {
    let readme = readme();
    let blocks = sh_blocks(&readme);
    let documented_token = documented_token_file(&readme);

    // What the README marks, and how.
    let agent: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.mark.as_deref() == Some(AGENT_MARK))
        .collect();
    assert_eq!(agent.len(), 1, "one block starts the agent: {blocks:#?}");
    let agent = agent[0];
    assert_eq!(
        agent.text.split('#').next().unwrap().trim(),
        "scripts/run.sh",
        "README.md:{}: the agent is started as the README says, with scripts/run.sh",
        agent.line
    );
    let run_sh = std::fs::read_to_string(Path::new(ROOT).join("scripts/run.sh")).unwrap();
    assert!(
        run_sh.contains("exec target/debug/beid-agent serve --simulate"),
        "scripts/run.sh starts the binary cargo test built"
    );
    let not_run: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.mark.as_deref().is_some_and(|m| m.starts_with(NOT_RUN)))
        .collect();
    assert!(not_run.len() <= MAX_NOT_RUN, "few exceptions: {not_run:#?}");
    for block in &not_run {
        let why = block.mark.as_deref().unwrap()[NOT_RUN.len()..].trim();
        assert!(
            !why.is_empty(),
            "README.md:{}: say why it is not run",
            block.line
        );
        assert!(
            block
                .note
                .as_deref()
                .is_some_and(|note| note.to_lowercase().contains("not run")),
            "README.md:{}: a visible note above the comment says it is not run",
            block.line
        );
    }
    for block in &blocks {
        if let Some(mark) = &block.mark {
            assert!(
                mark == AGENT_MARK || mark.starts_with(NOT_RUN),
                "README.md:{}: unknown mark {mark:?}",
                block.line
            );
        }
    }
    let runs: Vec<&Block> = blocks.iter().filter(|b| b.mark.is_none()).collect();
    assert!(runs.len() >= 3, "the README's commands: {blocks:#?}");
    assert!(
        blocks.iter().position(|b| std::ptr::eq(b, agent))
            < blocks.iter().position(|b| std::ptr::eq(b, runs[0])),
        "the agent starts before the blocks that use it"
    );
    assert_eq!(
        Path::new(AGENT),
        Path::new(ROOT).join("target/debug/beid-agent"),
        "the README's commands name target/debug/beid-agent: run the tests without CARGO_TARGET_DIR"
    );

    // The namespace's files (the driver keeps them reachable when the checkout is under
    // /tmp, which it replaces).
    let work = tempfile::Builder::new()
        .prefix("readme-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = |name: &str| work.path().join(name);
    std::fs::create_dir(path("bin")).unwrap();
    std::fs::write(
        path("bin/cargo"),
        "#!/bin/sh\n# tests/readme.rs: cargo test has built target/debug/beid-agent.\nexit 0\n",
    )
    .unwrap();
    make_executable(&path("bin/cargo"));
    std::fs::create_dir(path("reader.conf.d")).unwrap();
    std::fs::write(path("reader.conf.d/vpcd"), vpcd_reader_conf(VPCD_PORT)).unwrap();
    std::fs::write(path("agent.sh"), &agent.text).unwrap();
    for (i, block) in runs.iter().enumerate() {
        let text = block.text.replace(&documented_token, "${README_TOKEN}");
        std::fs::write(path(&format!("block-{i:02}.sh")), text).unwrap();
    }
    std::fs::write(path("driver.sh"), driver(work.path())).unwrap();

    let mut namespace = Command::new("unshare");
    if !is_root() {
        namespace.args(["--user", "--map-root-user"]);
    }
    let mut child = namespace
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
        ])
        .args(["--kill-child", "--mount-proc", "bash"])
        .arg(path("driver.sh"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(path("driver.err")).unwrap(),
        ))
        .spawn()
        .expect("unshare (util-linux)");
    let ended = wait_until(RUN_LIMIT, || matches!(child.try_wait(), Ok(Some(_))));
    if ended.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    let read = |name: &str| std::fs::read_to_string(path(name)).unwrap_or_default();
    assert!(
        ended.is_some(),
        "the README's blocks took over {RUN_LIMIT:?}"
    );
    let setup_error = read("setup-error");
    assert!(
        setup_error.is_empty(),
        "{setup_error}\ndriver: {}\nagent: {}{}\npcscd: {}",
        read("driver.err"),
        read("agent.out"),
        read("agent.err"),
        read("pcscd.log")
    );

    // The banner is what the README shows, and each block ran to its end.
    let banner = read("agent.out");
    let example = readme
        .split("```text\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|text| text.contains("demo token:"))
        .unwrap();
    assert_eq!(
        banner_labels(&banner),
        banner_labels(example),
        "the README shows the banner scripts/run.sh prints:\n{banner}\ndriver: {}",
        read("driver.err")
    );
    assert!(token_file(&banner).is_some(), "{banner}");
    let mut outputs = Vec::new();
    for (i, block) in runs.iter().enumerate() {
        let output = read(&format!("block-{i:02}.out"));
        let status = read(&format!("block-{i:02}.status"));
        assert_eq!(
            status.trim(),
            "0",
            "README.md:{} failed (status {status:?}):\n{}\n--- its output:\n{output}\n--- the agent's log:\n{}",
            block.line,
            block.text,
            read("agent.err")
        );
        outputs.push((block, output));
    }

    // What the README says the API example shows: an advice for the captured session, and
    // the session ended once the card left.
    let (_, api) = outputs
        .iter()
        .find(|(block, _)| block.text.contains("/advice"))
        .expect("the README asks an advice");
    assert!(api.contains("\"decision\""), "{api}");
    assert_eq!(api.lines().last().map(str::trim), Some("410"), "{api}");
    let (_, read_card) = outputs
        .iter()
        .find(|(block, _)| block.text.contains("simulate-card"))
        .expect("the README reads a simulated card through pcscd");
    assert!(read_card.contains("Authentic:       yes"), "{read_card}");
}

/// The README's table of exit statuses is the one the binary prints (`--help`, man pages).
#[test]
fn the_readme_exit_table_is_the_binarys() {
    let readme = readme();
    let start = readme
        .find("<!-- exit statuses:")
        .expect("the README marks its exit table");
    let table = &readme[start..];
    let table = &table[table.find("-->\n").unwrap() + 4..];
    let table = &table[..table.find("<!-- end of exit statuses -->").unwrap()];
    let printed = Command::new(AGENT)
        .args(["generate", "exit-codes"])
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(
        table.trim_end(),
        String::from_utf8(printed.stdout).unwrap().trim_end(),
        "README.md's exit table differs from `beid-agent generate exit-codes`: paste its output"
    );
}

fn make_executable(path: &PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
