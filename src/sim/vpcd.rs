//! Serves a [`SimCard`] to pcscd through vsmartcard's vpcd driver.
//!
//! vpcd listens on TCP; the card connects. Every message both ways is a 2-byte big-endian
//! length and a payload. A 1-byte payload from vpcd is a control (0 power off, 1 power on,
//! 2 reset, 4 send the ATR: only 4 is answered); anything longer is a command APDU,
//! answered with one response APDU. Closing the socket removes the card.
//!
//! vpcd writes length and payload separately; without `TCP_NODELAY`, `TCP_QUICKACK`
//! re-armed after every read and one write per frame on our side, every APDU stalls
//! 40 ms on delayed ACKs (`docs/card-protocol.md` §16).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::card::{SimCard, SimOutcome};

/// Why the card left the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// vpcd closed the connection (pcscd stopped).
    ReaderClosed,
    /// The card's removal fault fired.
    Removed,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VpcdError {
    #[error("cannot reach vpcd at {address} (is pcscd running with the vpcd driver?)")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to vpcd failed")]
    Io(#[from] std::io::Error),
}

/// Connects to vpcd, retrying until `patience` runs out (pcscd may still be loading the
/// driver), and reports the card as inserted.
pub fn connect(address: &str, patience: Duration) -> Result<TcpStream, VpcdError> {
    let deadline = Instant::now() + patience;
    loop {
        let attempt = address
            .to_socket_addrs()
            .and_then(|mut addrs| {
                addrs
                    .next()
                    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
            })
            .and_then(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)));
        match attempt {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(source) if Instant::now() >= deadline => {
                return Err(VpcdError::Connect {
                    address: address.to_owned(),
                    source,
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Serves the card on a connected stream until vpcd hangs up or a fault removes the card.
/// A mute card keeps the connection open and answers nothing, as a dead chip would.
pub fn serve(card: &mut SimCard, mut stream: TcpStream) -> Result<Departure, VpcdError> {
    let mut muted = false;
    loop {
        let Some(message) = read_frame(&mut stream)? else {
            return Ok(Departure::ReaderClosed);
        };
        if muted {
            continue;
        }
        match message.as_slice() {
            [0x00] | [0x01] | [0x02] => card.reset(),
            [0x04] => write_frame(&mut stream, card.atr())?,
            [_] => {}
            apdu => match card.process(apdu) {
                SimOutcome::Respond(response) => {
                    let wire = card.wire_time_for(apdu.len(), response.len());
                    if !wire.is_zero() {
                        std::thread::sleep(wire);
                    }
                    write_frame(&mut stream, &response)?;
                }
                SimOutcome::Removed => return Ok(Departure::Removed),
                SimOutcome::Mute => muted = true,
            },
        }
    }
}

/// Reads one frame; `None` when vpcd closed the connection.
fn read_frame(stream: &mut TcpStream) -> Result<Option<Vec<u8>>, VpcdError> {
    let mut length = [0u8; 2];
    if !read_acking(stream, &mut length)? {
        return Ok(None);
    }
    let mut payload = vec![0u8; usize::from(u16::from_be_bytes(length))];
    if !read_acking(stream, &mut payload)? {
        return Ok(None);
    }
    Ok(Some(payload))
}

/// Fills `buffer` and acknowledges at once: vpcd sends the length and the payload in two
/// segments, and its Nagle holds the payload until the length is acknowledged. Linux
/// clears quick-ACK mode by itself, so it is re-armed after every read. `false` when vpcd
/// hung up.
fn read_acking(stream: &mut TcpStream, buffer: &mut [u8]) -> Result<bool, VpcdError> {
    match stream.read_exact(buffer) {
        Ok(()) => {}
        Err(e) if is_hang_up(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    socket2::SockRef::from(&*stream).set_quickack(true)?;
    Ok(true)
}

fn is_hang_up(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

/// Writes length and payload in one write, so no delayed ACK can split them.
fn write_frame(stream: &mut TcpStream, payload: &[u8]) -> Result<(), VpcdError> {
    let length = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut frame = Vec::with_capacity(2 + payload.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&payload[..usize::from(length)]);
    stream.write_all(&frame)?;
    Ok(())
}
