//! The compressors behind the packer, as writers of the uncompressed tar stream.
//!
//! Both compress the way pigz does, on a few threads and in bounded memory: the tar stream is
//! cut into [`CHUNK`]-byte chunks at fixed offsets and each chunk is compressed on its own.
//!
//! - Gzip: each chunk is raw deflate primed with the last 32 KiB of the chunk before it as
//!   dictionary (so matches still reach back across the cut), ending with a sync flush (an
//!   empty stored block) so the pieces join into one deflate stream, in one gzip member whose
//!   trailer carries the CRC-32 of the whole tar.
//! - Zstd (OCI `tar+zstd`): each chunk is one zstd frame; a zstd stream may hold many frames.
//!
//! The cuts depend only on the offsets, never on timing or on how the input was split into
//! writes, so the bytes are the same on every run and with any number of threads.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use flate2::{Compress, Crc, FlushCompress, Status};

use super::Compression;

/// Uncompressed bytes per chunk; the unit of parallel work.
pub(super) const CHUNK: usize = 1 << 20;
/// Deflate's window: how much of the previous chunk primes the next.
const WINDOW: usize = 32 * 1024;
/// Most compression threads per layer, whatever the machine.
const MAX_WORKERS: usize = 8;

/// How each chunk is compressed.
#[derive(Clone, Copy, Debug)]
enum Codec {
    Deflate(u32),
    Zstd(i32),
}

/// One compressed layer stream, compressed in fixed-size chunks on a small thread pool
/// (started only once a layer outgrows one chunk, so small layers cost no thread).
pub(super) struct Compressor<W: Write> {
    out: W,
    codec: Codec,
    /// The chunk being filled.
    buf: Vec<u8>,
    /// Deflate only: the last [`WINDOW`] bytes of the previous chunk.
    dict: Vec<u8>,
    /// Deflate only: CRC-32 and length (modulo 2^32) of the uncompressed stream, for gzip.
    crc: Crc,
    len: u32,
    pool: Option<Pool>,
    /// Compressed chunks not written yet, in stream order.
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
}

impl<W: Write> Compressor<W> {
    pub(super) fn new(out: W, compression: Compression) -> Self {
        let codec = match compression {
            Compression::Gzip { level } => Codec::Deflate(level.min(9)),
            Compression::Zstd { level } => Codec::Zstd(level.clamp(1, 19)),
        };
        Compressor {
            out,
            codec,
            buf: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            crc: Crc::new(),
            len: 0,
            pool: None,
            pending: VecDeque::new(),
        }
    }

    /// The gzip header, once, before the first chunk.
    fn start(&mut self) -> io::Result<()> {
        if let Codec::Deflate(level) = self.codec {
            self.out.write_all(&gzip_header(level))?;
        }
        Ok(())
    }

    /// Take the chunk being filled and what primes it; account for it in the gzip trailer.
    fn take_chunk(&mut self) -> (Vec<u8>, Vec<u8>) {
        let input = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        if !matches!(self.codec, Codec::Deflate(_)) {
            return (input, Vec::new());
        }
        self.crc.update(&input);
        self.len = self.len.wrapping_add(input.len() as u32);
        let dict = input[input.len().saturating_sub(WINDOW)..].to_vec();
        (input, std::mem::replace(&mut self.dict, dict))
    }

    /// Hand the full chunk to the pool, waiting first if too many are in flight.
    fn dispatch(&mut self) -> io::Result<()> {
        if self.pool.is_none() {
            self.start()?;
        }
        let (input, dict) = self.take_chunk();
        let in_flight = self
            .pool
            .get_or_insert_with(|| Pool::new(self.codec))
            .in_flight;
        while self.pending.len() >= in_flight {
            self.write_next()?;
        }
        if let Some(pool) = &self.pool {
            self.pending.push_back(pool.submit(input, dict)?);
        }
        Ok(())
    }

    fn write_next(&mut self) -> io::Result<()> {
        if let Some(next) = self.pending.pop_front() {
            let compressed = next
                .recv()
                .map_err(|_| io::Error::other("a compression thread died"))??;
            self.out.write_all(&compressed)?;
        }
        Ok(())
    }

    /// Compress the last (possibly empty) chunk here, write everything in order, then the
    /// gzip trailer. A layer of one chunk never started the pool, nor wrote the header.
    pub(super) fn finish(mut self) -> io::Result<W> {
        if self.pool.is_none() {
            self.start()?;
        }
        let had_chunks = self.pool.is_some();
        let (input, dict) = self.take_chunk();
        let mut state = State::new(self.codec);
        // An empty zstd chunk after full ones would only add an empty frame.
        let last = match (self.codec, input.is_empty() && had_chunks) {
            (Codec::Zstd(_), true) => Vec::new(),
            _ => state.compress(&dict, &input, true)?,
        };
        while !self.pending.is_empty() {
            self.write_next()?;
        }
        self.out.write_all(&last)?;
        if let Codec::Deflate(_) = self.codec {
            self.out.write_all(&self.crc.sum().to_le_bytes())?;
            self.out.write_all(&self.len.to_le_bytes())?;
        }
        Ok(self.out)
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.dispatch()?;
        }
        Ok(n)
    }

    /// Never passes a partial chunk on: that would cut the stream somewhere else.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A fixed gzip header: no mtime, no name, OS "unknown"; XFL as gzip sets it for the level.
fn gzip_header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// A compressor's state, made once per thread (zstd) or per chunk (deflate).
enum State {
    Deflate(u32),
    Zstd(i32, Option<zstd::bulk::Compressor<'static>>),
}

impl State {
    fn new(codec: Codec) -> Self {
        match codec {
            Codec::Deflate(level) => State::Deflate(level),
            Codec::Zstd(level) => State::Zstd(level, None),
        }
    }

    fn compress(&mut self, dict: &[u8], input: &[u8], last: bool) -> io::Result<Vec<u8>> {
        match self {
            State::Deflate(level) => deflate(*level, dict, input, last),
            State::Zstd(level, state) => {
                let state = match state {
                    Some(state) => state,
                    None => state.insert(zstd::bulk::Compressor::new(*level)?),
                };
                state.compress(input)
            }
        }
    }
}

/// Raw deflate of one chunk, primed with `dict`: ends with a sync flush, or with the final
/// block when `last`. A fresh state every time: zlib-rs's `reset` leaves something behind that
/// changes later output (measured: a few bytes differ when chunks meet a used state).
fn deflate(level: u32, dict: &[u8], input: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut state = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        state.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = match last {
        true => FlushCompress::Finish,
        false => FlushCompress::Sync,
    };
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let start = state.total_in();
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        let consumed = (state.total_in() - start) as usize;
        let status = state
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let consumed = (state.total_in() - start) as usize;
        // A sync flush is complete once all input is in and the output was not filled up.
        let done = match status {
            Status::StreamEnd => true,
            _ => !last && consumed == input.len() && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
    }
}

struct Job {
    input: Vec<u8>,
    dict: Vec<u8>,
    done: SyncSender<io::Result<Vec<u8>>>,
}

/// Compression threads sharing one bounded queue; each result comes back on its own channel,
/// so the writer takes them in stream order whatever order they finish in.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    /// Most chunks compressing or compressed but unwritten: bounds memory to about
    /// `in_flight` x ([`CHUNK`] + its compressed size).
    in_flight: usize,
}

impl Pool {
    fn new(codec: Codec) -> Self {
        let n = thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, MAX_WORKERS);
        let (jobs, queue) = sync_channel::<Job>(n);
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..n)
            .map(|_| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || work(&queue, codec))
            })
            .collect();
        Pool {
            jobs: Some(jobs),
            workers,
            in_flight: 2 * n,
        }
    }

    fn submit(&self, input: Vec<u8>, dict: Vec<u8>) -> io::Result<Receiver<io::Result<Vec<u8>>>> {
        let (done, result) = sync_channel(1);
        let job = Job { input, dict, done };
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("pool closed"))?;
        jobs.send(job)
            .map_err(|_| io::Error::other("the compression threads stopped"))?;
        Ok(result)
    }
}

fn work(queue: &Mutex<Receiver<Job>>, codec: Codec) {
    let mut state = State::new(codec);
    loop {
        // The lock is held only while waiting for the next job, never while compressing.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let compressed = state.compress(&job.dict, &job.input, false);
        // The writer may have given up (an error elsewhere); nothing to do then.
        let _ = job.done.send(compressed);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Compressible but not trivial: some text-like runs and some noise, over several chunks.
    fn data(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_u32;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                match (i / 4096) % 3 {
                    0 => b"the quick brown fox "[i % 20],
                    1 => (x % 16) as u8 + b'a',
                    _ => x as u8,
                }
            })
            .collect()
    }

    fn compress(input: &[u8], compression: Compression, piece: usize) -> io::Result<Vec<u8>> {
        let mut c = Compressor::new(Vec::new(), compression);
        for part in input.chunks(piece) {
            c.write_all(part)?;
        }
        c.finish()
    }

    #[test]
    fn gzip_chunks_join_into_one_member_whatever_the_writes() -> TestResult {
        let gzip = Compression::Gzip { level: 6 };
        for len in [0, 1000, CHUNK, 3 * CHUNK + 12_345] {
            let input = data(len);
            let bytes = compress(&input, gzip, 1 << 16)?;
            assert_eq!(bytes, compress(&input, gzip, 7777)?, "{len}");
            // One member: a single-member decoder must see all of it.
            let mut raw = Vec::new();
            flate2::read::DeflateDecoder::new(&bytes[10..]).read_to_end(&mut raw)?;
            assert_eq!(raw, input, "{len}");
            let mut raw = Vec::new();
            GzDecoder::new(&bytes[..]).read_to_end(&mut raw)?;
            assert_eq!(raw, input, "{len}");
        }
        Ok(())
    }

    /// The pool changes nothing: the same chunks deflated one after another give the same bytes.
    #[test]
    fn gzip_bytes_do_not_depend_on_threads() -> TestResult {
        let input = data(2 * CHUNK + 5);
        let mut want = gzip_header(6).to_vec();
        let mut state = State::new(Codec::Deflate(6));
        let mut dict: &[u8] = &[];
        let chunks: Vec<&[u8]> = input.chunks(CHUNK).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            want.extend(state.compress(dict, chunk, i + 1 == chunks.len())?);
            dict = &chunk[chunk.len().saturating_sub(WINDOW)..];
        }
        let mut crc = Crc::new();
        crc.update(&input);
        want.extend(crc.sum().to_le_bytes());
        want.extend((input.len() as u32).to_le_bytes());
        assert_eq!(
            compress(&input, Compression::Gzip { level: 6 }, 4096)?,
            want
        );
        Ok(())
    }

    /// The same chunk gives the same bytes whatever the thread compressed before it.
    #[test]
    fn chunk_bytes_do_not_depend_on_earlier_chunks() -> TestResult {
        let input = data(3 * CHUNK);
        let (a, b, c) = (
            &input[..CHUNK],
            &input[CHUNK..2 * CHUNK],
            &input[2 * CHUNK..],
        );
        let dict = &b[CHUNK - WINDOW..];
        let mut fresh = State::new(Codec::Deflate(4));
        let want = fresh.compress(dict, c, false)?;
        let mut used = State::new(Codec::Deflate(4));
        used.compress(&[], a, false)?;
        used.compress(&a[CHUNK - WINDOW..], b, false)?;
        assert_eq!(used.compress(dict, c, false)?, want);
        Ok(())
    }

    #[test]
    fn zstd_round_trips_whatever_the_writes() -> TestResult {
        let input = data(2 * CHUNK);
        let zstd = Compression::Zstd { level: 3 };
        let bytes = compress(&input, zstd, 1 << 16)?;
        assert_eq!(bytes, compress(&input, zstd, 999)?);
        assert_eq!(zstd::stream::decode_all(&bytes[..])?, input);
        Ok(())
    }
}
