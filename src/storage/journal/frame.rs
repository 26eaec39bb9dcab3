//! The journal's framing: each group is one frame,
//! `[magic "VSJ1"][payload length u32 LE][lsn u64 LE][crc32c u32 LE][payload]`, the
//! checksum covering the length, the LSN and the payload. A frame is valid only whole:
//! a torn append (a crash mid-write, a power loss before the sync) leaves a frame that
//! fails its length or its checksum.

use super::checksum::crc32c;

/// The first bytes of every frame.
pub(crate) const MAGIC: [u8; 4] = *b"VSJ1";

/// Bytes before a frame's payload.
pub(crate) const HEADER: usize = 20;

/// A valid frame found in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    /// Where it starts in the file.
    pub(crate) offset: u64,
    /// The LSN of its group.
    pub(crate) lsn: u64,
    /// Its payload (the encoded group effects).
    pub(crate) payload: &'a [u8],
}

/// Where the valid frames end, when something follows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// The offset of the first byte that is not a valid frame.
    pub(crate) offset: u64,
    /// What is wrong there.
    pub(crate) reason: String,
}

/// The frame of the group `lsn` with `payload`.
pub(crate) fn encode(lsn: u64, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&lsn.to_le_bytes());
    let crc = crc32c(crc32c(0, &frame[4..16]), payload);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The frame at `offset` and where the next one starts, or why there is none.
fn parse(bytes: &[u8], offset: usize) -> Result<(Frame<'_>, usize), String> {
    let rest = bytes.get(offset..).unwrap_or_default();
    let Some(header) = rest.get(..HEADER) else {
        return Err(format!("a frame header cut short ({} of {HEADER} bytes)", rest.len()));
    };
    if header[..4] != MAGIC {
        return Err("no frame marker".into());
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let len = word(4) as usize;
    let lsn = u64::from(word(8)) | (u64::from(word(12)) << 32);
    let Some(payload) = rest.get(HEADER..HEADER + len) else {
        return Err(format!("a frame of {len} bytes cut short at {} bytes", rest.len() - HEADER));
    };
    if crc32c(crc32c(0, &header[4..16]), payload) != word(16) {
        return Err(format!("a frame of {len} bytes whose checksum does not match"));
    }
    Ok((Frame { offset: offset as u64, lsn, payload }, offset + HEADER + len))
}

/// The valid frames at the start of `bytes`, and what ends them if not the end of the
/// bytes: a torn tail, which was never acknowledged, or a frame whose LSN is not above
/// the one before it, left from before the last checkpoint (the journal is overwritten
/// from its start after each checkpoint).
///
/// # Errors
///
/// The offset and reason of an invalid frame followed by a valid one whose LSN is above
/// `after` and above every frame before it: a group acknowledged after the damage,
/// which a replay cannot skip. (Frames at or below those LSNs are left over from before
/// the last checkpoint and say nothing.)
pub(crate) fn scan(bytes: &[u8], after: u64) -> Result<(Vec<Frame<'_>>, Option<Invalid>), Invalid> {
    let mut frames: Vec<Frame<'_>> = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let (frame, next) = match parse(bytes, offset) {
            Ok(parsed) => parsed,
            Err(reason) => {
                let invalid = Invalid { offset: offset as u64, reason };
                let newest = frames.iter().map(|f| f.lsn).max().unwrap_or(0).max(after);
                return match valid_after(bytes, offset + 1, newest) {
                    Some(later) => Err(Invalid {
                        reason: format!(
                            "{}, followed by the valid frame of group {} at offset {}",
                            invalid.reason, later.lsn, later.offset
                        ),
                        ..invalid
                    }),
                    None => Ok((frames, Some(invalid))),
                };
            }
        };
        if let Some(before) = frames.last()
            && frame.lsn <= before.lsn
        {
            // A whole frame of an older group: the frames written since the last
            // checkpoint, which are contiguous from the start, end here, and what
            // follows is older still. Nothing after it is searched.
            let reason = format!(
                "the frame of group {} after group {}, left from before a checkpoint",
                frame.lsn, before.lsn
            );
            return Ok((frames, Some(Invalid { offset: offset as u64, reason })));
        }
        frames.push(frame);
        offset = next;
    }
    Ok((frames, None))
}

/// The first valid frame at or after `from` whose LSN is above `newest`.
fn valid_after(bytes: &[u8], from: usize, newest: u64) -> Option<Frame<'_>> {
    let mut at = from;
    while let Some(found) = bytes.get(at..)?.windows(4).position(|w| w == MAGIC) {
        let offset = at + found;
        if let Ok((frame, _)) = parse(bytes, offset)
            && frame.lsn > newest
        {
            return Some(frame);
        }
        at = offset + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{HEADER, encode, scan};

    #[test]
    fn a_torn_tail_ends_the_frames_and_damage_before_a_newer_frame_is_an_error() {
        let mut log = encode(1, b"one");
        log.extend(encode(2, b"two"));
        let whole = log.len();
        log.extend(&encode(3, b"three")[..HEADER + 2]);
        let (frames, torn) = scan(&log, 0).expect("a torn tail is not an error");
        assert_eq!(frames.iter().map(|f| f.lsn).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(torn.map(|t| t.offset), Some(whole as u64));

        let mut damaged = encode(1, b"one");
        let second = damaged.len();
        damaged.extend(encode(2, b"two"));
        damaged.extend(encode(3, b"three"));
        damaged[second + HEADER] ^= 1;
        let err = scan(&damaged, 0).expect_err("group 3 follows the damage");
        assert_eq!(err.offset, second as u64);

        // Frames at or below the checkpoint after the damage are leftovers.
        assert!(scan(&damaged, 3).is_ok());
    }

    #[test]
    fn frames_left_from_before_a_checkpoint_end_the_journal() {
        // Groups 1 to 3, checkpointed; then groups 4 and 5 written over them from the
        // start, ending exactly where an old frame starts.
        let mut old = encode(1, b"aaaa");
        let second = old.len();
        old.extend(encode(2, b"bb"));
        let third = old.len();
        old.extend(encode(3, b"cc"));
        let mut log = encode(4, b"aaaa");
        log.extend(encode(5, b"bb"));
        assert_eq!(log.len(), third);
        log.extend_from_slice(&old[third..]);
        let (frames, end) = scan(&log, 3).expect("old frames are not damage");
        assert_eq!(frames.iter().map(|f| f.lsn).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(end.map(|e| e.offset), Some(third as u64));

        // Ending inside an old frame: its rest is a torn tail.
        let mut log = encode(4, b"aaaaaa");
        assert!(log.len() > second && log.len() < third);
        log.extend_from_slice(&old[log.len()..]);
        let (frames, _) = scan(&log, 3).expect("old frames are not damage");
        assert_eq!(frames.iter().map(|f| f.lsn).collect::<Vec<_>>(), vec![4]);

        // Damage in the new frames, followed by a newer one, is still damage.
        let mut damaged = encode(4, b"aaaa");
        damaged.extend(encode(5, b"bb"));
        damaged.extend(encode(6, b"cc"));
        damaged[second + HEADER] ^= 1;
        assert!(scan(&damaged, 3).is_err());
    }
}
