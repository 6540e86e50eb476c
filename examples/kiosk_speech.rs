//! Makes the kiosk's speech clips from its message catalogue: run it through
//! `scripts/kiosk-speech.sh` (which checks that espeak-ng and opusenc are installed).
//!
//! For every spoken message and default use-case label in every language
//! (`beid_agent::api::kiosk::speech::Catalogue::lines`), espeak-ng speaks the text to a
//! WAV file and opusenc turns it into mono Ogg Opus under `assets/kiosk/speech/<lang>/`.
//! A clip the manifest already holds for the same text and settings is kept (`--all` makes
//! every clip again). Then it writes the manifest and `src/api/kiosk/clips.rs`, the table
//! that embeds the clips in the binary, and removes clips no message needs any more.
//!
//! Both tools are deterministic (opusenc with a fixed stream serial number): the same text
//! gives the same bytes, so regenerating changes only what changed.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use beid_agent::api::kiosk::speech::{
    sha256_hex, Catalogue, ClipEntry, Line, Manifest, OPUS_KBPS, VOICES, WORDS_PER_MINUTE,
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    let all = std::env::args().skip(1).any(|arg| arg == "--all");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let speech = root.join("assets/kiosk/speech");
    let old = std::fs::read_to_string(speech.join("manifest.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Manifest>(&text).ok())
        .filter(|old| !all && same_settings(old, &Manifest::current_settings()));
    let work = tempfile::Builder::new().prefix("kiosk-speech-").tempdir()?;

    let mut manifest = Manifest::current_settings();
    let (mut made, mut kept, mut total) = (0, 0, 0);
    let lines = Catalogue::embedded()?.lines();
    for line in &lines {
        let path = clip_path(&speech, line);
        let existing = std::fs::read(&path).ok();
        let bytes = match (&old, existing) {
            (Some(old), Some(bytes)) if old.holds(line, &bytes) => {
                kept += 1;
                bytes
            }
            _ => {
                made += 1;
                synthesise(line, &path, work.path())?
            }
        };
        total += bytes.len();
        manifest
            .clips
            .entry(line.language.clone())
            .or_default()
            .insert(
                line.clip.clone(),
                ClipEntry {
                    text_sha256: sha256_hex(line.spoken.as_bytes()),
                    clip_sha256: sha256_hex(&bytes),
                    bytes: bytes.len(),
                },
            );
    }
    let removed = remove_unused(&speech, &manifest)?;
    std::fs::write(
        speech.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    std::fs::write(root.join("src/api/kiosk/clips.rs"), clip_table(&lines))?;
    println!(
        "{} clips ({made} made, {kept} kept, {removed} removed), {:.0} KiB in all",
        lines.len(),
        total as f64 / 1024.0
    );
    Ok(())
}

fn same_settings(a: &Manifest, b: &Manifest) -> bool {
    (&a.voices, a.words_per_minute, a.opus_kbps) == (&b.voices, b.words_per_minute, b.opus_kbps)
}

fn clip_path(speech: &Path, line: &Line) -> PathBuf {
    speech
        .join(&line.language)
        .join(format!("{}.ogg", line.clip))
}

/// espeak-ng to WAV, opusenc to Ogg Opus (mono, speech tuning, a fixed serial number).
fn synthesise(line: &Line, path: &Path, work: &Path) -> Result<Vec<u8>> {
    let voice = VOICES
        .iter()
        .find(|(language, _)| *language == line.language)
        .map(|(_, voice)| *voice)
        .ok_or_else(|| format!("no voice for {}", line.language))?;
    let wav = work.join("clip.wav");
    run(Command::new("espeak-ng")
        .args(["-v", voice, "-s", &WORDS_PER_MINUTE.to_string(), "-w"])
        .arg(&wav)
        .arg("--")
        .arg(&line.spoken))?;
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    run(Command::new("opusenc")
        .args(["--quiet", "--speech", "--downmix-mono", "--serial", "1"])
        .args(["--bitrate", &OPUS_KBPS.to_string()])
        .arg(&wav)
        .arg(path))?;
    Ok(std::fs::read(path)?)
}

fn run(command: &mut Command) -> Result<()> {
    let output = command.output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            command.get_program(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

/// Deletes clip files (and empty language folders) the manifest does not list.
fn remove_unused(speech: &Path, manifest: &Manifest) -> Result<usize> {
    let mut removed = 0;
    for folder in std::fs::read_dir(speech)? {
        let folder = folder?.path();
        if !folder.is_dir() {
            continue;
        }
        let language = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let wanted = manifest.clips.get(&language);
        for file in std::fs::read_dir(&folder)? {
            let file = file?.path();
            let clip = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let clip = clip.strip_suffix(".ogg").unwrap_or(&clip);
            if !wanted.is_some_and(|clips| clips.contains_key(clip)) {
                std::fs::remove_file(&file)?;
                removed += 1;
            }
        }
        if wanted.is_none() {
            std::fs::remove_dir(&folder)?;
        }
    }
    Ok(removed)
}

/// `src/api/kiosk/clips.rs`: the clips as `include_bytes!`, in the lines' order (by language,
/// then clip name).
fn clip_table(lines: &[Line]) -> String {
    let mut table = String::from(
        "//! The kiosk's speech clips, embedded in the binary: (language, clip, Ogg Opus).\n\
         //! Written by scripts/kiosk-speech.sh from assets/kiosk/messages.json: do not edit.\n\n\
         #[rustfmt::skip]\n\
         pub const CLIPS: &[(&str, &str, &[u8])] = &[\n",
    );
    for Line { language, clip, .. } in lines {
        let _ = writeln!(
            table,
            "    (\"{language}\", \"{clip}\", include_bytes!(\"../../../assets/kiosk/speech/{language}/{clip}.ogg\")),"
        );
    }
    table.push_str("];\n");
    table
}
