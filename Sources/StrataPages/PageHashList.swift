import Foundation
import StrataCore
import StrataCrypto
import Synchronization

/// The SHA-256 of every page of a SQLite file, and a root over them that identifies the file's
/// content without rehashing it: `leaf(p) = SHA-256(page p)`, `group(j) = SHA-256(leaf(256j) ||
/// ... || leaf(256j + 255))` (the last group may be shorter), and
/// `root = SHA-256("strata-page-hashes-v1\0" || page size u32 || page count u32 || group(0) || ...)`.
///
/// The leaves live in a file (`path`, 32 bytes per page after a 32-byte header); the groups, 1/256
/// of the leaves, in memory. Updating from a patch rewrites the changed leaves and rehashes only
/// the groups they fall in (256 leaves each) and the root.
public final class PageHashList {
    public static let fanout = 256
    static let magic: [UInt8] = Array("STRPHASH".utf8)
    static let fileHeaderSize = 32
    static let rootPrefix: [UInt8] = Array("strata-page-hashes-v1".utf8) + [0]

    public let path: String
    public private(set) var pageSize: Int
    public private(set) var pageCount: UInt32
    private var groups: [[UInt8]]
    private let file: PosixFile
    private let zeroLeaf: [UInt8]

    private init(path: String, file: PosixFile, pageSize: Int, pageCount: UInt32, groups: [[UInt8]]) {
        self.path = path
        self.file = file
        self.pageSize = pageSize
        self.pageCount = pageCount
        self.groups = groups
        let d = Digest(.sha256)
        d.update([UInt8](repeating: 0, count: pageSize))
        zeroLeaf = d.finalize()
    }

    /// The root of the current pages.
    public var root: [UInt8] { Self.root(pageSize: pageSize, pageCount: pageCount, groups: groups) }

    static func root(pageSize: Int, pageCount: UInt32, groups: [[UInt8]]) -> [UInt8] {
        let d = Digest(.sha256)
        d.update(rootPrefix)
        var n: [UInt8] = []
        BigEndian.put(UInt32(pageSize), &n)
        BigEndian.put(pageCount, &n)
        d.update(n)
        for g in groups { d.update(g) }
        return d.finalize()
    }

    /// Hashes every page of `database` (a full pass: done when a base is written, or by
    /// `verify --deep`) into a new list at `path`. With `copyTo`, also copies the file there in
    /// the same pass (materializing a base), so the base is read once.
    public static func build(database: String, to path: String, copyTo: String? = nil) throws -> PageHashList {
        let header = try SQLiteFileHeader.read(path: database)
        let src = try PosixFile(path: database, mode: .read)
        let size = try src.size()
        guard size % Int64(header.pageSize) == 0 else {
            throw StrataError(
                .corrupt, object: database, field: "file size",
                message: "is \(size) bytes, not a whole number of \(header.pageSize)-byte pages",
                fix: "the file is truncated or not SQLite; download or produce it again")
        }
        let pageCount = UInt32(size / Int64(header.pageSize))
        let out = try PosixFile(path: path, mode: .create)
        let copy = try copyTo.map { try PosixFile(path: $0, mode: .create) }
        try fileHeader(pageSize: header.pageSize, pageCount: pageCount).withUnsafeBytes { try out.write($0, at: 0) }
        // Groups are hashed in parallel slices (one per core, at most 4; one for small files):
        // each slice reads its pages in runs of up to 1 MiB, writes their leaves and its copy at
        // their offsets, and keeps its groups' hashes. Memory: 1 MiB per slice.
        let groupCount = (Int(pageCount) + fanout - 1) / fanout
        let slices = pageCount < 8192 ? 1 : max(1, min(4, ProcessInfo.processInfo.activeProcessorCount, groupCount))
        let results = Mutex<[Int: Result<[[UInt8]], any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: slices) { slice in
            let r = Result {
                try hashPages(
                    src: src, database: database, pageSize: header.pageSize, pageCount: pageCount,
                    groups: (groupCount * slice / slices)..<(groupCount * (slice + 1) / slices), out: out, copy: copy)
            }
            results.withLock { $0[slice] = r }
        }
        var groups: [[UInt8]] = []
        groups.reserveCapacity(groupCount)
        for slice in 0..<slices { groups += try results.withLock { $0[slice]! }.get() }
        try copy?.sync()
        try copy?.close()
        return PageHashList(path: path, file: out, pageSize: header.pageSize, pageCount: pageCount, groups: groups)
    }

    /// Hashes the pages of `groups` (pages fanout x group ...) of `src`: writes their leaves to
    /// `out` (and the pages to `copy`) at their offsets; returns the groups' hashes.
    private static func hashPages(
        src: PosixFile, database: String, pageSize: Int, pageCount: UInt32, groups: Range<Int>, out: PosixFile,
        copy: PosixFile?
    ) throws -> [[UInt8]] {
        var groupHashes: [[UInt8]] = []
        groupHashes.reserveCapacity(groups.count)
        let firstPage = UInt32(groups.lowerBound * fanout)
        let endPage = min(pageCount, UInt32(groups.upperBound * fanout))
        let pagesPerRun = max(1, (1 << 20) / pageSize)
        var buffer = [UInt8](repeating: 0, count: pagesPerRun * pageSize)
        var groupDigest = Digest(.sha256)
        var leaves: [UInt8] = []
        leaves.reserveCapacity(pagesPerRun * 32)
        var pgno = firstPage
        while pgno < endPage {
            let run = min(pagesPerRun, Int(endPage - pgno))
            let bytes = run * pageSize
            let offset = Int64(pgno) * Int64(pageSize)
            let n = try buffer.withUnsafeMutableBytes {
                try src.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<bytes]), at: offset)
            }
            guard n == bytes else {
                throw StrataError(
                    .io, object: database, message: "changed size while being read",
                    fix: "do not write the file while Strata reads it")
            }
            let first = pgno
            try buffer.withUnsafeBytes { all in
                if let copy { try copy.write(UnsafeRawBufferPointer(rebasing: all[0..<bytes]), at: offset) }
                for i in 0..<run {
                    let d = Digest(.sha256)
                    d.update(UnsafeRawBufferPointer(rebasing: all[(i * pageSize)..<((i + 1) * pageSize)]))
                    let leaf = d.finalize()
                    leaves += leaf
                    groupDigest.update(leaf)
                    pgno += 1
                    if pgno % UInt32(fanout) == 0 || pgno == pageCount {
                        groupHashes.append(groupDigest.finalize())
                        groupDigest = Digest(.sha256)
                    }
                }
            }
            try leaves.withUnsafeBytes { try out.write($0, at: leafOffset(first)) }
            leaves.removeAll(keepingCapacity: true)
        }
        return groupHashes
    }

    /// The root of a file's pages, computed in one pass (no list kept).
    public static func root(ofDatabase database: String) throws -> [UInt8] {
        let tmp = NSTemporaryDirectory() + "strata-pagehash-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { unlink(tmp) }
        return try build(database: database, to: tmp).root
    }

    /// Opens a list written by `build` or `update`; reads the leaves once to rebuild the groups.
    public static func open(path: String) throws -> PageHashList {
        let f = try PosixFile(path: path, mode: .readWrite)
        var h = [UInt8](repeating: 0, count: fileHeaderSize)
        let n = try h.withUnsafeMutableBytes { try f.read(into: $0, at: 0) }
        guard n == fileHeaderSize, Array(h[0..<8]) == magic else {
            throw StrataError(
                .corrupt, object: path, field: "header", message: "is not a Strata page-hash list",
                fix: "delete it; it is rebuilt from the materialized file")
        }
        let (pageSize, pageCount) = h.withUnsafeBytes { (Int(BigEndian.u32($0, 12)), BigEndian.u32($0, 16)) }
        guard try f.size() == leafOffset(pageCount) else {
            throw StrataError(
                .corrupt, object: path, field: "file size",
                message: "does not hold \(pageCount) page hashes",
                fix: "delete it; it is rebuilt from the materialized file")
        }
        let list = PageHashList(path: path, file: f, pageSize: pageSize, pageCount: pageCount, groups: [])
        let groupCount = (Int(pageCount) + fanout - 1) / fanout
        list.groups.reserveCapacity(groupCount)
        for j in 0..<groupCount { list.groups.append(try list.hashGroup(j)) }
        return list
    }

    static func fileHeader(pageSize: Int, pageCount: UInt32) -> [UInt8] {
        var h = magic
        BigEndian.put(UInt32(1), &h)
        BigEndian.put(UInt32(pageSize), &h)
        BigEndian.put(pageCount, &h)
        return h + [UInt8](repeating: 0, count: fileHeaderSize - h.count)
    }

    static func leafOffset(_ pgno: UInt32) -> Int64 { Int64(fileHeaderSize) + Int64(pgno) * 32 }

    /// The leaf of page `pgno` (1-based).
    public func leaf(_ pgno: UInt32) throws -> [UInt8] {
        precondition(pgno >= 1 && pgno <= pageCount)
        var b = [UInt8](repeating: 0, count: 32)
        _ = try b.withUnsafeMutableBytes { try file.read(into: $0, at: Self.leafOffset(pgno - 1)) }
        return b
    }

    private func hashGroup(_ j: Int) throws -> [UInt8] {
        let first = j * Self.fanout
        let count = min(Self.fanout, Int(pageCount) - first)
        var b = [UInt8](repeating: 0, count: count * 32)
        let n = try b.withUnsafeMutableBytes { try file.read(into: $0, at: Self.leafOffset(UInt32(first))) }
        guard n == b.count else {
            throw StrataError(
                .corrupt, object: path, field: "leaves", message: "are truncated",
                fix: "delete it; it is rebuilt from the materialized file")
        }
        let d = Digest(.sha256)
        d.update(b)
        return d.finalize()
    }

    /// Sets the file to `pageCount` pages with `changed` pages (page number and SHA-256, strictly
    /// increasing) replaced; pages past the old count that `changed` does not set are zeros.
    /// Reads and rehashes only the groups that changed. Returns the new root.
    @discardableResult
    public func update(pageCount newCount: UInt32, changed: [(pgno: UInt32, sha256: [UInt8])]) throws -> [UInt8] {
        let oldCount = pageCount
        var touched = Set<Int>()
        // Pages that grow the file: zero leaves first, then the changed ones on top.
        if newCount > oldCount {
            var zeros: [UInt8] = []
            zeros.reserveCapacity(Int(min(newCount - oldCount, 4096)) * 32)
            var p = oldCount
            while p < newCount {
                let run = min(4096, Int(newCount - p))
                zeros.removeAll(keepingCapacity: true)
                for _ in 0..<run { zeros += zeroLeaf }
                try zeros.withUnsafeBytes { try file.write($0, at: Self.leafOffset(p)) }
                p += UInt32(run)
            }
            for j in (Int(oldCount) / Self.fanout)..<((Int(newCount) + Self.fanout - 1) / Self.fanout) {
                touched.insert(j)
            }
        } else if newCount < oldCount {
            try file.truncate(to: Self.leafOffset(newCount))
            if newCount % UInt32(Self.fanout) != 0 { touched.insert(Int(newCount) / Self.fanout) }
        }
        for (pgno, sha) in changed {
            precondition(pgno >= 1 && pgno <= newCount && sha.count == 32)
            try sha.withUnsafeBytes { try file.write($0, at: Self.leafOffset(pgno - 1)) }
            touched.insert(Int(pgno - 1) / Self.fanout)
        }
        pageCount = newCount
        try Self.fileHeader(pageSize: pageSize, pageCount: newCount).withUnsafeBytes { try file.write($0, at: 0) }
        let groupCount = (Int(newCount) + Self.fanout - 1) / Self.fanout
        if groups.count > groupCount { groups.removeLast(groups.count - groupCount) }
        while groups.count < groupCount { groups.append([]) }
        for j in touched.sorted() where j < groupCount { groups[j] = try hashGroup(j) }
        return root
    }

    /// Updates the list from a patch (read and verified to its end): the frames carry each page's
    /// SHA-256, so no page of the database is read. Refuses (list unchanged) a patch that does not
    /// apply to this list's root; fails when the patch does not lead to the root it claims (the
    /// list then holds the patch's pages and must be discarded with the file it describes).
    @discardableResult
    public func apply(patch path: String, object: String? = nil) throws -> [UInt8] {
        let r = try PagePatchReader(path: path, object: object)
        let h = r.header
        guard h.pageSize == pageSize else {
            throw StrataError(
                .refused, object: r.object, field: "header.page_size",
                message: "is \(h.pageSize); the file it would apply to has \(pageSize)-byte pages",
                fix: "a page-size change needs a new base")
        }
        guard h.fromRoot == root, h.fromPageCount == pageCount else {
            throw StrataError(
                .refused, object: r.object, field: "header.from_root",
                message: "names another file than this one (\(pageCount) pages, root "
                    + "\(Hex.encode(root).prefix(16))...)", fix: "apply the patches of the chain in order")
        }
        var changed: [(pgno: UInt32, sha256: [UInt8])] = []
        changed.reserveCapacity(Int(h.frameCount))
        while let f = try r.next() { changed.append((f.pgno, f.sha256)) }
        let newRoot = try update(pageCount: h.toPageCount, changed: changed)
        guard newRoot == h.toRoot else {
            throw StrataError(
                .corrupt, object: r.object, field: "header.to_root",
                message: "does not match the root its pages give",
                fix: "the patch is damaged or was written for another file; rebuild the version")
        }
        return newRoot
    }
}
