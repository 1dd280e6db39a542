import Foundation
import StrataCore
import StrataCrypto

/// One patch of a chain: the local file and the name errors use (its store key).
public struct PagePatchSource: Sendable {
    public var path: String
    public var object: String
    public init(path: String, object: String? = nil) {
        self.path = path
        self.object = object ?? path
    }
}

/// What applying or materializing produced.
public struct PagePatchApplyResult: Equatable, Sendable {
    public var pageCount: UInt32
    public var pageSize: Int
    /// The page-hash root of the result, equal to the chain's last `toRoot`.
    public var root: [UInt8]
    /// Pages written by the chain (including pages set to zeros).
    public var pagesWritten: Int
}

/// A chain of page patches read as one: a streaming k-way merge by page number that keeps, for
/// each page, the newest frame still inside the file (a later patch that cut the file below the
/// page drops it). One page buffer per patch; the plan holds 8 bytes per frame.
public enum PagePatchChain {
    /// A page of the merged view: the index of the patch whose frame wins, or nil for zeros (the
    /// file was cut below the page, then grew again without the page being written).
    struct Entry {
        var pgno: UInt32
        var source: Int?
    }

    static func open(_ chain: [PagePatchSource]) throws -> [PagePatchReader] {
        try chain.map { try PagePatchReader(path: $0.path, object: $0.object) }
    }

    /// Checks that the patches follow each other: same page size, each one's from (root and page
    /// count) is the previous one's to.
    static func checkLinks(_ readers: [PagePatchReader]) throws {
        for i in readers.indices.dropFirst() {
            let prev = readers[i - 1]
            let r = readers[i]
            guard r.header.pageSize == prev.header.pageSize else {
                throw StrataError(
                    .refused, object: r.object, field: "header.page_size",
                    message: "is \(r.header.pageSize) but \(prev.object) has \(prev.header.pageSize)",
                    fix: "a page-size change needs a new base, not a patch")
            }
            guard r.header.fromRoot == prev.header.toRoot, r.header.fromPageCount == prev.header.toPageCount else {
                throw StrataError(
                    .refused, object: r.object, field: "header.from_root",
                    message: "does not follow \(prev.object): it applies to another file",
                    fix: "give the chain's patches in the manifest's order, none missing")
            }
        }
    }

    static func checkBase(
        _ readers: [PagePatchReader], pageSize: Int, pageCount: UInt32, root: [UInt8]?,
        object: String
    ) throws {
        guard let first = readers.first else { return }
        guard first.header.pageSize == pageSize else {
            throw StrataError(
                .refused, object: first.object, field: "header.page_size",
                message: "is \(first.header.pageSize); the base \(object) has \(pageSize)-byte pages",
                fix: "a page-size change needs a new base, not a patch")
        }
        guard first.header.fromPageCount == pageCount, root.map({ $0 == first.header.fromRoot }) ?? true else {
            throw StrataError(
                .refused, object: first.object, field: "header.from_root",
                message: "was made for another base than \(object) (\(pageCount) pages)",
                fix: "apply the chain to the base its manifest names")
        }
    }

    /// The merged view's pages, in order, from the patches' indexes alone.
    static func plan(_ readers: [PagePatchReader]) throws -> [Entry] {
        guard let first = readers.first, let last = readers.last else { return [] }
        let n = readers.count
        // sufMin[j] = the smallest page count the file has from patch j on.
        var sufMin = [UInt32](repeating: UInt32.max, count: n + 1)
        for j in stride(from: n - 1, through: 0, by: -1) {
            sufMin[j] = min(sufMin[j + 1], readers[j].header.toPageCount)
        }
        let indexes = try readers.map { r in try diagnosing(r) { try r.indexedPages() } }
        var heads = [Int](repeating: 0, count: n)
        var winners: [Entry] = []
        while true {
            var p = UInt32.max
            for j in 0..<n where heads[j] < indexes[j].count { p = min(p, indexes[j][heads[j]]) }
            if p == UInt32.max { break }
            var newest = -1
            for j in 0..<n where heads[j] < indexes[j].count && indexes[j][heads[j]] == p {
                newest = j
                heads[j] += 1
            }
            if sufMin[newest + 1] >= p { winners.append(Entry(pgno: p, source: newest)) }
        }
        // Pages of the first file that a cut removed and no later frame set: zeros.
        let zeroLow = sufMin[0] + 1
        let zeroHigh = min(first.header.fromPageCount, last.header.toPageCount)
        guard zeroLow <= zeroHigh else { return winners }
        var out: [Entry] = []
        out.reserveCapacity(winners.count + Int(zeroHigh - zeroLow + 1))
        var w = 0
        var z = zeroLow
        while w < winners.count || z <= zeroHigh {
            if z <= zeroHigh && (w == winners.count || z < winners[w].pgno) {
                out.append(Entry(pgno: z, source: nil))
                z += 1
            } else {
                if z == winners[w].pgno { z += 1 }
                out.append(winners[w])
                w += 1
            }
        }
        return out
    }

    /// Runs `body`; when it fails, reads the patch front to back to report the first damage in file
    /// order (truncation, a bad frame) rather than its symptom in the index.
    static func diagnosing<R>(_ r: PagePatchReader, _ body: () throws -> R) throws -> R {
        do { return try body() } catch {
            try PagePatchReader.verify(path: r.path, object: r.object)
            throw error
        }
    }

    /// Streams the plan: for each entry, `sink` gets the page number and the reader whose current
    /// frame is the page (nil for zeros). Then reads every patch to its end, so every trailer is
    /// verified before the caller trusts what it wrote.
    static func stream(
        _ readers: [PagePatchReader], _ plan: [Entry],
        _ sink: (UInt32, PagePatchReader?, PagePatchReader.Frame?) throws -> Void
    ) throws {
        for e in plan {
            guard let j = e.source else {
                try sink(e.pgno, nil, nil)
                continue
            }
            let r = readers[j]
            var frame: PagePatchReader.Frame?
            while let f = try r.next() {
                if f.pgno >= e.pgno {
                    frame = f
                    break
                }
            }
            guard let frame, frame.pgno == e.pgno else {
                try diagnosing(r) {
                    throw StrataError(
                        .corrupt, object: r.object, field: "index",
                        message: "lists page \(e.pgno) but no frame holds it",
                        fix: "download the patch again; if it stays damaged, rebuild the version")
                }
                return
            }
            try sink(e.pgno, r, frame)
        }
        for r in readers { while try r.next() != nil {} }
    }

    static func zeroPageSHA(_ pageSize: Int) -> [UInt8] {
        let d = Digest(.sha256)
        d.update([UInt8](repeating: 0, count: pageSize))
        return d.finalize()
    }

    /// Writes the merged view into `file`, which holds the chain's first file; returns the
    /// changed pages' hashes.
    static func write(_ readers: [PagePatchReader], onto file: PosixFile) throws -> [(pgno: UInt32, sha256: [UInt8])] {
        guard let last = readers.last else { return [] }
        let pageSize = last.header.pageSize
        let zeros = [UInt8](repeating: 0, count: pageSize)
        let zeroSHA = zeroPageSHA(pageSize)
        let plan = try plan(readers)
        var changed: [(pgno: UInt32, sha256: [UInt8])] = []
        changed.reserveCapacity(plan.count)
        try stream(readers, plan) { pgno, reader, frame in
            let offset = Int64(pgno - 1) * Int64(pageSize)
            if let reader, let frame {
                try reader.page.withUnsafeBytes { try file.write($0, at: offset) }
                changed.append((pgno, frame.sha256))
            } else {
                try zeros.withUnsafeBytes { try file.write($0, at: offset) }
                changed.append((pgno, zeroSHA))
            }
        }
        try file.truncate(to: Int64(last.header.toPageCount) * Int64(pageSize))
        try file.sync()
        return changed
    }

    /// Applies a chain in place to `database`, which must be the chain's first file: `hashes` is
    /// its page-hash list (its root is checked against the chain, and it is updated to the
    /// result). Every patch is verified in full before the file is touched, so a damaged patch
    /// leaves the file as it was; a failure while writing (disk) leaves it to be materialized again.
    @discardableResult
    public static func apply(
        _ chain: [PagePatchSource], onto database: String, baseObject: String? = nil, hashes: PageHashList
    ) throws -> PagePatchApplyResult {
        let header = try SQLiteFileHeader.read(path: database)
        let file = try PosixFile(path: database, mode: .readWrite)
        guard try file.size() == Int64(hashes.pageCount) * Int64(hashes.pageSize), hashes.pageSize == header.pageSize
        else {
            throw StrataError(
                .refused, object: hashes.path, field: "page_count",
                message: "does not describe \(database) (\(try file.size()) bytes)",
                fix: "rebuild the page-hash list from the file")
        }
        for s in chain { try PagePatchReader.verify(path: s.path, object: s.object) }
        let readers = try open(chain)
        try checkLinks(readers)
        try checkBase(
            readers, pageSize: header.pageSize, pageCount: hashes.pageCount, root: hashes.root,
            object: baseObject ?? database)
        let changed = try write(readers, onto: file)
        try file.close()
        let expected = readers.last?.header.toRoot ?? hashes.root
        let root = try hashes.update(pageCount: readers.last?.header.toPageCount ?? hashes.pageCount, changed: changed)
        guard root == expected else {
            throw StrataError(
                .corrupt, object: readers.last!.object, field: "header.to_root",
                message: "does not match the root of the pages the chain gives",
                fix: "the chain is damaged; materialize the version again from its base")
        }
        return PagePatchApplyResult(
            pageCount: hashes.pageCount, pageSize: header.pageSize, root: root,
            pagesWritten: changed.count)
    }

    /// Materializes base + chain into `output` (written as `output.partial`, renamed when every
    /// check passed): copies the base while hashing its pages into a new page-hash list at
    /// `hashList` (so the base is read once, in 1 MiB runs), checks the base's root against the
    /// chain, writes the merged view, and checks the result's root against the chain's last.
    /// Memory: one 1 MiB copy buffer, one page per patch, 8 bytes per changed page.
    @discardableResult
    public static func materialize(
        base: String, baseObject: String? = nil, chain: [PagePatchSource],
        to output: String, hashList: String
    ) throws -> PagePatchApplyResult {
        let partial = output + ".partial"
        var ok = false
        defer { if !ok { unlink(partial) } }
        let readers = try open(chain)
        try checkLinks(readers)
        let header = try SQLiteFileHeader.read(path: base)
        if let first = readers.first, first.header.pageSize != header.pageSize {
            try checkBase(readers, pageSize: header.pageSize, pageCount: 0, root: nil, object: baseObject ?? base)
        }
        let hashes = try PageHashList.build(database: base, to: hashList, copyTo: partial)
        try checkBase(
            readers, pageSize: hashes.pageSize, pageCount: hashes.pageCount, root: hashes.root,
            object: baseObject ?? base)
        let file = try PosixFile(path: partial, mode: .readWrite)
        let changed = try write(readers, onto: file)
        try file.close()
        let expected = readers.last?.header.toRoot ?? hashes.root
        let root = try hashes.update(pageCount: readers.last?.header.toPageCount ?? hashes.pageCount, changed: changed)
        guard root == expected else {
            throw StrataError(
                .corrupt, object: readers.last!.object, field: "header.to_root",
                message: "does not match the root of the pages the chain gives",
                fix: "the chain is damaged; rebuild the version from its base")
        }
        guard rename(partial, output) == 0 else { throw file.ioError("rename to \(output)") }
        ok = true
        return PagePatchApplyResult(
            pageCount: hashes.pageCount, pageSize: hashes.pageSize, root: root,
            pagesWritten: changed.count)
    }

    /// Merges a chain into one patch with the same effect (from the first patch's file to the
    /// last one's): frames are copied as stored, the newest one per page; pages a cut removed and
    /// no later frame set become zero frames. Every input is read to its end and verified.
    @discardableResult
    public static func merge(
        _ chain: [PagePatchSource], to path: String, compression: PageCompression = .standard
    )
        throws -> PagePatchSummary
    {
        precondition(!chain.isEmpty, "merge needs at least one patch")
        let readers = try open(chain)
        try checkLinks(readers)
        let first = readers.first!.header
        let last = readers.last!.header
        let plan = try plan(readers)
        let header = PagePatchHeader(
            pageSize: first.pageSize, fromPageCount: first.fromPageCount, toPageCount: last.toPageCount,
            frameCount: UInt32(plan.count), fromRoot: first.fromRoot, toRoot: last.toRoot)
        let writer = try PagePatchWriter(path: path, header: header, compression: compression)
        let zeros = [UInt8](repeating: 0, count: first.pageSize)
        try stream(readers, plan) { pgno, reader, frame in
            if let reader, let frame {
                try reader.withStoredBytes(frame) {
                    try writer.addStored(page: pgno, encoding: frame.encoding, stored: $0, sha256: frame.sha256)
                }
            } else {
                try zeros.withUnsafeBytes { try writer.add(page: pgno, raw: $0) }
            }
        }
        return try writer.finish()
    }
}
