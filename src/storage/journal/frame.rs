//! The journal's framing: each group is one frame,
//! `[magic "VSJ2"][payload length u32 LE][lsn u64 LE][salt u64 LE][crc32c u32 LE][payload]`,
//! the checksum covering the length, the LSN, the salt and the payload. A frame is valid
//! only whole: a torn append (a crash mid-write, a power loss before the sync) leaves a
//! frame that fails its length or its checksum.
//!
//! The salt is drawn afresh at each checkpoint and stored durably in the store file by
//! the checkpoint's commit; every frame until the next checkpoint carries it. A frame
//! with another salt is left over from an earlier stretch of the journal (the journal is
//! overwritten from its start after each checkpoint), and so is any frame-shaped run of
//! bytes inside an old frame's payload, such as a stored value that holds another
//! journal: only frames with the store file's salt are groups to replay.
//!
//! Files written before salts were stored hold frames
//! `[magic "VSJ1"][length u32][lsn u64][crc32c u32][payload]`, read when the store file
//! has no salt or the journal starts with one (a journal left by an older build, which
//! keeps the salt a newer one stored), and never written.

use super::checksum::crc32c;

/// The first bytes of every frame written.
const MAGIC: [u8; 4] = *b"VSJ2";

/// The first bytes of a frame of a store file without a salt.
pub(crate) const MAGIC_UNSALTED: [u8; 4] = *b"VSJ1";

/// Bytes before a frame's payload.
pub(crate) const HEADER: usize = 28;

/// Bytes before an unsalted frame's payload.
const HEADER_UNSALTED: usize = 20;

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

/// The frame of the group `lsn` with `payload`, in the stretch of the journal whose
/// salt is `salt`.
pub(crate) fn encode(lsn: u64, salt: u64, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&lsn.to_le_bytes());
    frame.extend_from_slice(&salt.to_le_bytes());
    let crc = crc32c(crc32c(0, &frame[4..24]), payload);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The frame at `offset` and where the next one starts, or why there is none: with
/// `salt`, only a frame carrying it is valid; without one (a store file from before
/// salts were stored), only an unsalted frame is.
fn parse(bytes: &[u8], offset: usize, salt: Option<u64>) -> Result<(Frame<'_>, usize), String> {
    let (magic, header_len) = match salt {
        Some(_) => (MAGIC, HEADER),
        None => (MAGIC_UNSALTED, HEADER_UNSALTED),
    };
    let rest = bytes.get(offset..).unwrap_or_default();
    let Some(header) = rest.get(..header_len) else {
        return Err(format!("a frame header cut short ({} of {header_len} bytes)", rest.len()));
    };
    if header[..4] != magic {
        return Err("no frame marker".into());
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let double = |at: usize| u64::from(word(at)) | (u64::from(word(at + 4)) << 32);
    let len = word(4) as usize;
    let lsn = double(8);
    let Some(payload) = rest.get(header_len..header_len + len) else {
        return Err(format!(
            "a frame of {len} bytes cut short at {} bytes",
            rest.len() - header_len
        ));
    };
    let crc_at = header_len - 4;
    if crc32c(crc32c(0, &header[4..crc_at]), payload) != word(crc_at) {
        return Err(format!("a frame of {len} bytes whose checksum does not match"));
    }
    if let Some(salt) = salt
        && double(16) != salt
    {
        return Err(format!(
            "the frame of group {lsn} with salt {:#x}, left from before the checkpoint that \
             drew salt {salt:#x}",
            double(16)
        ));
    }
    Ok((Frame { offset: offset as u64, lsn, payload }, offset + header_len + len))
}

/// The valid frames at the start of `bytes`, and what ends them if not the end of the
/// bytes: a torn tail, which was never acknowledged, or a frame whose LSN is not above
/// the one before it or whose salt is not `salt`, left from before the last checkpoint
/// (the journal is overwritten from its start after each checkpoint). `salt` is the
/// store file's, `None` for a file from before salts were stored.
///
/// # Errors
///
/// The offset and reason of an invalid frame followed by a valid one whose LSN is above
/// `after` and above every frame before it, and with `salt`: a group acknowledged
/// after the damage, which a replay cannot skip. (Frames at or below those LSNs, and
/// frames with another salt, are left over from before the last checkpoint and say
/// nothing.)
pub(crate) fn scan(
    bytes: &[u8],
    after: u64,
    salt: Option<u64>,
) -> Result<(Vec<Frame<'_>>, Option<Invalid>), Invalid> {
    let mut frames: Vec<Frame<'_>> = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let (frame, next) = match parse(bytes, offset, salt) {
            Ok(parsed) => parsed,
            Err(reason) => {
                let invalid = Invalid { offset: offset as u64, reason };
                let newest = frames.iter().map(|f| f.lsn).max().unwrap_or(0).max(after);
                return match valid_after(bytes, offset + 1, newest, salt) {
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

/// The first valid frame at or after `from` whose LSN is above `newest`, with `salt`.
fn valid_after(bytes: &[u8], from: usize, newest: u64, salt: Option<u64>) -> Option<Frame<'_>> {
    let magic = if salt.is_some() { MAGIC } else { MAGIC_UNSALTED };
    let mut at = from;
    while let Some(found) = bytes.get(at..)?.windows(4).position(|w| w == magic) {
        let offset = at + found;
        if let Ok((frame, _)) = parse(bytes, offset, salt)
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
    use super::{HEADER, HEADER_UNSALTED, MAGIC_UNSALTED, encode, scan};
    use crate::storage::journal::checksum::crc32c;

    const SALT: u64 = 0x5eed_0001;
    const OLD_SALT: u64 = 0x5eed_0000;

    fn encode_unsalted(lsn: u64, payload: &[u8]) -> Vec<u8> {
        let mut frame = MAGIC_UNSALTED.to_vec();
        frame.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_le_bytes());
        frame.extend_from_slice(&lsn.to_le_bytes());
        let crc = crc32c(crc32c(0, &frame[4..16]), payload);
        frame.extend_from_slice(&crc.to_le_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn a_torn_tail_ends_the_frames_and_damage_before_a_newer_frame_is_an_error() {
        let mut log = encode(1, SALT, b"one");
        log.extend(encode(2, SALT, b"two"));
        let whole = log.len();
        log.extend(&encode(3, SALT, b"three")[..HEADER + 2]);
        let (frames, torn) = scan(&log, 0, Some(SALT)).expect("a torn tail is not an error");
        assert_eq!(frames.iter().map(|f| f.lsn).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(torn.map(|t| t.offset), Some(whole as u64));

        let mut damaged = encode(1, SALT, b"one");
        let second = damaged.len();
        damaged.extend(encode(2, SALT, b"two"));
        damaged.extend(encode(3, SALT, b"three"));
        damaged[second + HEADER] ^= 1;
        let err = scan(&damaged, 0, Some(SALT)).expect_err("group 3 follows the damage");
        assert_eq!(err.offset, second as u64);

        // Frames at or below the checkpoint after the damage are leftovers.
        assert!(scan(&damaged, 3, Some(SALT)).is_ok());
    }

    #[test]
    fn frames_left_from_before_a_checkpoint_end_the_journal() {
        // Groups 1 to 3, checkpointed; then groups 4 and 5 written over them from the
        // start, ending exactly where an old frame starts.
        let mut old = encode(1, OLD_SALT, b"aaaa");
        let second = old.len();
        old.extend(encode(2, OLD_SALT, b"bb"));
        let third = old.len();
        old.extend(encode(3, OLD_SALT, b"cc"));
        let mut log = encode(4, SALT, b"aaaa");
        log.extend(encode(5, SALT, b"bb"));
        assert_eq!(log.len(), third);
        log.extend_from_slice(&old[third..]);
        let (frames, end) = scan(&log, 3, Some(SALT)).expect("old frames are not damage");
        assert_eq!(frames.iter().map(|f| f.lsn).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(end.map(|e| e.offset), Some(third as u64));

        // Ending inside an old frame: its rest is a torn tail.
        let mut log = encode(4, SALT, b"aaaaaa");
        assert!(log.len() > second && log.len() < third);
        log.extend_from_slice(&old[log.len()..]);
        let (frames, _) = scan(&log, 3, Some(SALT)).expect("old frames are not damage");
        assert_eq!(frames.iter().map(|f| f.lsn).collect::<Vec<_>>(), vec![4]);

        // Damage in the new frames, followed by a newer one, is still damage.
        let mut damaged = encode(4, SALT, b"aaaa");
        damaged.extend(encode(5, SALT, b"bb"));
        damaged.extend(encode(6, SALT, b"cc"));
        damaged[second + HEADER] ^= 1;
        assert!(scan(&damaged, 3, Some(SALT)).is_err());
    }

    #[test]
    fn frames_inside_an_old_payload_are_not_groups() {
        // Before the last checkpoint, a group stored a value holding another journal's
        // frames, of groups far above this journal's. After the checkpoint, group 4 was
        // written over the start and group 5 torn: the search for frames past the tear
        // meets those frames, whose salt is not this stretch's.
        let mut inner = encode(900, OLD_SALT, b"x");
        inner.extend(encode(901, SALT ^ 1, b"y"));
        let mut payload = vec![0u8; 64];
        payload.extend(&inner);
        let old = encode(3, OLD_SALT, &payload);
        let mut log = encode(4, SALT, b"four");
        let torn = log.len();
        log.extend(&encode(5, SALT, b"five")[..=HEADER]);
        assert!(log.len() < old.len());
        log.extend_from_slice(&old[log.len()..]);
        let (frames, end) = scan(&log, 3, Some(SALT)).expect("old bytes are not damage");
        assert_eq!(frames.iter().map(|f| f.lsn).collect::<Vec<_>>(), vec![4]);
        assert_eq!(end.map(|e| e.offset), Some(torn as u64));

        // A frame with this stretch's salt past the tear is a group after the damage.
        let mut damaged = log[..=torn + HEADER].to_vec();
        damaged.extend(vec![0u8; 16]);
        damaged.extend(encode(6, SALT, b"six"));
        let err = scan(&damaged, 3, Some(SALT)).expect_err("group 6 follows the damage");
        assert_eq!(err.offset, torn as u64);
    }

    #[test]
    fn a_file_without_a_salt_reads_unsalted_frames_only() {
        let mut log = encode_unsalted(1, b"one");
        log.extend(encode_unsalted(2, b"two"));
        let (frames, end) = scan(&log, 0, None).expect("unsalted frames");
        assert_eq!(
            frames.iter().map(|f| (f.lsn, f.payload)).collect::<Vec<_>>(),
            vec![(1, b"one".as_slice()), (2, b"two".as_slice())]
        );
        assert_eq!(end, None);
        assert_eq!(HEADER_UNSALTED + 3, encode_unsalted(1, b"one").len());

        // Scanned for salted frames (the replay does so when the journal does not start
        // with an unsalted one), they are not groups.
        let (frames, end) = scan(&log, 0, Some(SALT)).expect("old frames are not damage");
        assert!(frames.is_empty());
        assert_eq!(end.map(|e| e.offset), Some(0));
    }
}
