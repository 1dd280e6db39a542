import CZlib
import Foundation
import StrataCore
import StrataCrypto
import StrataDelta

/// The committed content of a SQLite WAL file: for each page, a CRC-32 of its last committed
/// frame (a fingerprint to check the checkpoint against, not a security hash: the SHA-256 is taken
/// once per page, from the file), and the database size the last commit set. Parsed by the WAL format
/// (https://www.sqlite.org/fileformat2.html#walformat): a 32-byte header (magic 0x377f0682/3,
/// whose low bit says the checksum words are big-endian, version 3007000, page size, checkpoint
/// sequence, two salts, a checksum of the first 24 bytes), then frames of a 24-byte header
/// (page number, database size in pages for a commit frame else 0, the salts, a cumulative
/// checksum over each frame header's first 8 bytes and its page) and one page. The log ends at
/// the first frame whose salts or checksum do not match; frames after the last commit frame
/// belong to no committed transaction and are ignored.
public struct WALContent: Sendable {
    public var pageSize: Int
    /// Database size in pages after the last commit; nil when nothing was committed.
    public var databasePageCount: UInt32?
    /// Last committed frame's page CRC-32 (zlib's), by page number.
    public var pages: [UInt32: UInt32]
    public var frames: Int
    public var commits: Int

    /// Reads the WAL at `path` (a missing or empty file is an empty log). One page in memory.
    public static func read(path: String) throws -> WALContent {
        guard FileManager.default.fileExists(atPath: path) else {
            return WALContent(pageSize: 0, databasePageCount: nil, pages: [:], frames: 0, commits: 0)
        }
        let f = try PosixFile(path: path, mode: .read)
        var h = [UInt8](repeating: 0, count: 32)
        let n = try h.withUnsafeMutableBytes { try f.read(into: $0, at: 0) }
        if n < 32 { return WALContent(pageSize: 0, databasePageCount: nil, pages: [:], frames: 0, commits: 0) }
        func corrupt(_ field: String, _ message: String) -> StrataError {
            StrataError(
                .corrupt, object: path, field: field, message: message,
                fix: "this is not a SQLite WAL this code understands; capture again from the base")
        }
        let magic = h.withUnsafeBytes { BigEndian.u32($0, 0) }
        guard magic == 0x377f_0682 || magic == 0x377f_0683 else { throw corrupt("header.magic", "is \(magic)") }
        let bigEndian = magic & 1 == 1
        let (version, pageSize, salt1, salt2, c1, c2) = h.withUnsafeBytes {
            (
                BigEndian.u32($0, 4), Int(BigEndian.u32($0, 8)), BigEndian.u32($0, 16), BigEndian.u32($0, 20),
                BigEndian.u32($0, 24), BigEndian.u32($0, 28)
            )
        }
        guard version == 3_007_000 else { throw corrupt("header.version", "is \(version), expected 3007000") }
        guard PagePatchFormat.validPageSize(pageSize) else { throw corrupt("header.page_size", "is \(pageSize)") }
        var s0: UInt32 = 0
        var s1: UInt32 = 0
        h.withUnsafeBytes { walChecksum(UnsafeRawBufferPointer(rebasing: $0[0..<24]), bigEndian, &s0, &s1) }
        guard s0 == c1, s1 == c2 else { throw corrupt("header.checksum", "does not match the header") }

        var out = WALContent(pageSize: pageSize, databasePageCount: nil, pages: [:], frames: 0, commits: 0)
        var pending: [UInt32: UInt32] = [:]
        var frame = [UInt8](repeating: 0, count: 24 + pageSize)
        var offset: Int64 = 32
        while true {
            let got = try frame.withUnsafeMutableBytes { try f.read(into: $0, at: offset) }
            if got < frame.count { break }
            let valid: Bool = frame.withUnsafeBytes { b in
                guard BigEndian.u32(b, 8) == salt1, BigEndian.u32(b, 12) == salt2 else { return false }
                var t0 = s0
                var t1 = s1
                walChecksum(UnsafeRawBufferPointer(rebasing: b[0..<8]), bigEndian, &t0, &t1)
                walChecksum(UnsafeRawBufferPointer(rebasing: b[24...]), bigEndian, &t0, &t1)
                guard t0 == BigEndian.u32(b, 16), t1 == BigEndian.u32(b, 20) else { return false }
                s0 = t0
                s1 = t1
                return true
            }
            if !valid { break }
            let (pgno, commitSize) = frame.withUnsafeBytes { (BigEndian.u32($0, 0), BigEndian.u32($0, 4)) }
            pending[pgno] = frame.withUnsafeBytes { WALContent.crc32(UnsafeRawBufferPointer(rebasing: $0[24...])) }
            out.frames += 1
            if commitSize != 0 {
                out.pages.merge(pending) { _, new in new }
                pending.removeAll(keepingCapacity: true)
                out.databasePageCount = commitSize
                out.commits += 1
            }
            offset += Int64(frame.count)
        }
        return out
    }

    /// zlib's CRC-32 of `b`.
    static func crc32(_ b: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(CZlib.crc32(0, b.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(b.count)))
    }

    /// SQLite's WAL checksum: over 32-bit words in pairs, s0 += x[i] + s1; s1 += x[i+1] + s0.
    static func walChecksum(_ b: UnsafeRawBufferPointer, _ bigEndian: Bool, _ s0: inout UInt32, _ s1: inout UInt32) {
        var i = 0
        while i + 8 <= b.count {
            let x0: UInt32
            let x1: UInt32
            if bigEndian {
                x0 = BigEndian.u32(b, i)
                x1 = BigEndian.u32(b, i + 4)
            } else {
                x0 = UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
                x1 = UInt32(b[i + 4]) | UInt32(b[i + 5]) << 8 | UInt32(b[i + 6]) << 16 | UInt32(b[i + 7]) << 24
            }
            s0 = s0 &+ x0 &+ s1
            s1 = s1 &+ x1 &+ s0
            i += 8
        }
    }
}

/// Settings of page capture (constants of the design, as values with defaults).
public struct PageCaptureSettings: Sendable {
    /// How patch frames are stored (`PageCompression.standard`, the zero run: Docs/design/0002).
    public var compression: PageCompression = .standard
    public init(compression: PageCompression = .standard) { self.compression = compression }
}

/// What one capture did.
public struct PageCaptureResult: Sendable {
    public var patch: PagePatchSummary
    /// WAL frames SQLite wrote (every frame, several per page when a page changed twice).
    public var walFrames: Int
    public var commits: Int
    /// The patch back to the file before the capture, when one was asked for.
    public var undo: PagePatchSummary?
    /// Seconds spent: running the body, reading the WAL, checkpointing and leaving WAL mode,
    /// writing the patch (reading and hashing the changed pages, compressing, fsync).
    public var seconds: (body: Double, wal: Double, checkpoint: Double, patch: Double) = (0, 0, 0, 0)
}

/// Captures the pages a write changes, from the write itself (no diff, no pass over the file).
///
/// `capture` opens the file in WAL mode with an exclusive lock and automatic checkpoints off,
/// runs `body` on that connection, and reads the WAL: the last committed frame of each page and
/// the database size of the last commit. It then checkpoints (the file is truncated when it
/// shrank) and returns the file to rollback-journal mode, so it stays a plain SQLite file. That
/// last step rewrites page 1's header (the WAL/rollback version bytes and the change counter), so
/// page 1 is always in the patch and taken from the file; every other page is taken from the file
/// after the checkpoint and must hash to its WAL frame, which checks that the file is exactly
/// base + patch. `hashes` (the page-hash list of the file before) is updated to the file after,
/// from the changed pages alone, and gives the patch's from and to roots.
///
/// `body` must not change the journal mode, run a checkpoint or VACUUM INTO the same file, nor
/// leave a transaction open; `capture` refuses the first and the last. When `capture` throws
/// after `body` ran, the file and `hashes` no longer describe a known version (the body may have
/// committed): discard both and materialize the version again.
public enum PageCapture {
    public static func capture(
        database path: String, hashes: PageHashList, patch patchPath: String, undo undoPath: String? = nil,
        settings: PageCaptureSettings = PageCaptureSettings(),
        body: (Database) throws -> Void
    ) throws -> PageCaptureResult {
        for suffix in ["-wal", "-journal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            throw StrataError(
                .refused, object: path + suffix, message: "exists before the capture",
                fix: "open the file with SQLite once to recover or remove it, then capture again")
        }
        let before = try SQLiteFileHeader.read(path: path)
        let fromRoot = hashes.root
        let fromCount = hashes.pageCount
        var page1 = [UInt8](repeating: 0, count: before.pageSize)
        do {
            let f = try PosixFile(path: path, mode: .read)
            _ = try page1.withUnsafeMutableBytes { try f.read(into: $0, at: 0) }
            let d = Digest(.sha256)
            d.update(page1)
            guard try f.size() == Int64(fromCount) * Int64(before.pageSize), hashes.pageSize == before.pageSize,
                fromCount >= 1, try d.finalize() == hashes.leaf(1)
            else {
                throw StrataError(
                    .refused, object: hashes.path, message: "is not the page-hash list of \(path)",
                    fix: "rebuild it with PageHashList.build from the file")
            }
        }

        let db = try Database(path: path, mode: .readWriteCreate)
        try db.execute("PRAGMA locking_mode = EXCLUSIVE")
        guard try db.scalarText("PRAGMA journal_mode = WAL") == "wal" else {
            throw StrataError(
                .io, object: path, field: "journal_mode", message: "SQLite did not switch to WAL",
                fix: "the file must be on a local file system that supports WAL")
        }
        try db.execute("PRAGMA wal_autocheckpoint = 0")
        var clock = Date()
        func lap() -> Double {
            let t = Date().timeIntervalSince(clock)
            clock = Date()
            return t
        }
        try body(db)
        let bodySeconds = lap()
        let mode = try db.scalarText("PRAGMA journal_mode")
        guard mode == "wal" else {
            throw StrataError(
                .refused, object: path, field: "journal_mode",
                message: "is \(mode ?? "unknown") after the write; the capture needs WAL throughout",
                fix: "do not change journal_mode (or page_size with VACUUM) inside the capture; "
                    + "write a new base instead")
        }
        do { try db.execute("BEGIN") } catch {
            throw StrataError(
                .refused, object: path, message: "the write left a transaction open",
                fix: "commit or roll back inside the capture's body")
        }
        try db.execute("ROLLBACK")
        let wal = try WALContent.read(path: path + "-wal")
        let walSeconds = lap()
        // The undo patch's pages, read before the checkpoint while the file still holds them.
        let undoPages = try undoPath.map { undoPath in
            try savePreImages(
                path: path, wal: wal, fromCount: fromCount, hashes: hashes, page1: page1, to: undoPath + ".pages")
        }
        let ckpt = try db.prepare("PRAGMA wal_checkpoint(TRUNCATE)")
        guard try ckpt.step(), ckpt.columnInt64(0) == 0 else {
            throw StrataError(
                .io, object: path, message: "the WAL checkpoint did not complete",
                fix: "no other connection may hold the file during a capture")
        }
        ckpt.reset()
        _ = consume ckpt
        guard try db.scalarText("PRAGMA journal_mode = DELETE") == "delete" else {
            throw StrataError(
                .io, object: path, field: "journal_mode", message: "SQLite did not leave WAL mode",
                fix: "no other connection may hold the file during a capture")
        }
        try db.close()

        let checkpointSeconds = lap()
        let after = try SQLiteFileHeader.read(path: path)
        guard after.pageSize == before.pageSize, wal.pageSize == 0 || wal.pageSize == before.pageSize else {
            throw StrataError(
                .refused, object: path, field: "page_size",
                message: "changed from \(before.pageSize) to \(after.pageSize)",
                fix: "a page-size change needs a new base")
        }
        let toCount = wal.databasePageCount ?? fromCount
        let file = try PosixFile(path: path, mode: .read)
        guard try file.size() == Int64(toCount) * Int64(before.pageSize) else {
            throw StrataError(
                .io, object: path, field: "file size",
                message: "is \(try file.size()) bytes after the checkpoint; the WAL's last commit "
                    + "says \(toCount) pages of \(before.pageSize)",
                fix: "no other connection may hold the file during a capture")
        }
        var pgnos = wal.pages.keys.filter { $0 <= toCount && $0 != 1 }.sorted()
        pgnos.insert(1, at: 0)
        var page = [UInt8](repeating: 0, count: before.pageSize)
        func readPage(_ p: UInt32) throws {
            let n = try page.withUnsafeMutableBytes {
                try file.read(into: $0, at: Int64(p - 1) * Int64(before.pageSize))
            }
            guard n == page.count else {
                throw StrataError(
                    .io, object: path, message: "page \(p) is short after the checkpoint",
                    fix: "no other process may write the file during a capture")
            }
        }
        // One SHA-256 per changed page, of the file after the checkpoint; every page but the first
        // must be its last committed WAL frame (same CRC-32), so the file is exactly base + patch.
        var changed: [(pgno: UInt32, sha256: [UInt8])] = []
        changed.reserveCapacity(pgnos.count)
        for p in pgnos {
            try readPage(p)
            if p != 1, page.withUnsafeBytes({ WALContent.crc32($0) }) != wal.pages[p]! {
                throw StrataError(
                    .io, object: path, message: "page \(p) after the checkpoint differs from its WAL frame",
                    fix: "no other process may write the file during a capture")
            }
            let d = Digest(.sha256)
            d.update(page)
            changed.append((p, d.finalize()))
        }
        let toRoot = try hashes.update(pageCount: toCount, changed: changed)
        let header = PagePatchHeader(
            pageSize: before.pageSize, fromPageCount: fromCount, toPageCount: toCount,
            frameCount: UInt32(pgnos.count), fromRoot: fromRoot, toRoot: toRoot)
        let writer = try PagePatchWriter(path: patchPath, header: header, compression: settings.compression)
        // Read again (from the page cache) to write: the patch's header, which holds the new root,
        // comes first in the streamed and digested file, and one page is all that is held.
        for (p, sha) in changed {
            try readPage(p)
            try page.withUnsafeBytes { try writer.add(page: p, raw: $0, sha256: sha) }
        }
        let summary = try writer.finish()
        var result = PageCaptureResult(patch: summary, walFrames: wal.frames, commits: wal.commits)
        if let undoPath, let undoPages {
            let preImages = try PosixFile(path: undoPath + ".pages", mode: .read)
            defer { unlink(undoPath + ".pages") }
            let undoHeader = PagePatchHeader(
                pageSize: before.pageSize, fromPageCount: toCount, toPageCount: fromCount,
                frameCount: UInt32(undoPages.count), fromRoot: toRoot, toRoot: fromRoot)
            let undo = try PagePatchWriter(path: undoPath, header: undoHeader, compression: settings.compression)
            for (i, (p, sha)) in undoPages.enumerated() {
                _ = try page.withUnsafeMutableBytes {
                    try preImages.read(into: $0, at: Int64(i) * Int64(before.pageSize))
                }
                try page.withUnsafeBytes { try undo.add(page: p, raw: $0, sha256: sha) }
            }
            result.undo = try undo.finish()
        }
        result.seconds = (bodySeconds, walSeconds, checkpointSeconds, lap())
        return result
    }

    /// Writes the current content of the pages an undo patch needs (page 1 as it was before the
    /// capture, every page the WAL changes and every page a shrink cuts, all within the old page
    /// count) to `tempPath`, checking each against the page-hash list; returns them with hashes.
    static func savePreImages(
        path: String, wal: WALContent, fromCount: UInt32, hashes: PageHashList, page1: [UInt8], to tempPath: String
    ) throws -> [(pgno: UInt32, sha256: [UInt8])] {
        let toCount = wal.databasePageCount ?? fromCount
        var pages = Set(wal.pages.keys.filter { $0 <= fromCount })
        pages.insert(1)
        if toCount < fromCount { for p in (toCount + 1)...fromCount { pages.insert(p) } }
        let file = try PosixFile(path: path, mode: .read)
        let out = try PosixFile(path: tempPath, mode: .create)
        var page = [UInt8](repeating: 0, count: page1.count)
        var saved: [(pgno: UInt32, sha256: [UInt8])] = []
        saved.reserveCapacity(pages.count)
        for (i, p) in pages.sorted().enumerated() {
            if p == 1 {
                page = page1
            } else {
                let size = page1.count
                let n = try page.withUnsafeMutableBytes { try file.read(into: $0, at: Int64(p - 1) * Int64(size)) }
                guard n == size else {
                    throw StrataError(
                        .io, object: path, message: "page \(p) is short before the checkpoint",
                        fix: "no other process may write the file during a capture")
                }
            }
            let d = Digest(.sha256)
            d.update(page)
            let sha = d.finalize()
            guard try sha == hashes.leaf(p) else {
                throw StrataError(
                    .refused, object: hashes.path, field: "page \(p)",
                    message: "does not hash like page \(p) of \(path): the list is not this file's",
                    fix: "rebuild it with PageHashList.build from the file, then capture again")
            }
            try page.withUnsafeBytes { try out.write($0, at: Int64(i) * Int64(page1.count)) }
            saved.append((p, sha))
        }
        try out.close()
        return saved
    }
}
