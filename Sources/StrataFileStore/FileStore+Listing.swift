import Foundation
import StrataCore

#if canImport(Glibc)
    import Glibc
#endif

// Listing in S3 ListObjectsV2 order (keys compared as UTF-8 bytes) at a cost of about one page.
//
// Keys are paths, so the walk is a descent that visits each directory's entries in key order: an
// entry sorts by its key, with a "/" after a directory's name (the directory "a" holds keys
// "a/...", which sort after "a.b" and before "a0"). A directory whose keys all sort at or before
// the continuation key, or outside the prefix, or that rolls up into a common prefix already
// returned, is never opened. The walk stops at the first entry past a full page, and only the
// objects it returns are stat-ed (the entry types come from readdir).
extension FileStore {
    public func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws
        -> ListPage
    {
        var walk = ListingWalk(
            prefix: Array(prefix.utf8), delimiter: delimiter.flatMap { $0.isEmpty ? nil : Array($0.utf8) },
            after: continuation.map { Array($0.utf8) }, limit: max(1, maxKeys))
        // Start in the directory the prefix pins down ("a/b/c" -> "a/b"): its ancestors hold
        // nothing else that could match.
        // A prefix through "..", "." or the internal directory matches no key.
        let dirPart = prefix.contains("/") ? String(prefix[..<prefix.lastIndex(of: "/")!]) : ""
        let segments = dirPart.split(separator: "/", omittingEmptySubsequences: false)
        if dirPart.isEmpty {
            _ = walk.visit(self, dir: root.path, key: [])
        } else if !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }),
            segments[0] != FileStore.internalName
        {
            _ = walk.visit(self, dir: root.path + "/" + dirPart, key: Array((dirPart + "/").utf8))
        }
        return ListPage(
            objects: walk.objects, commonPrefixes: walk.prefixes,
            continuation: walk.truncated ? walk.last.map { String(decoding: $0, as: UTF8.self) } : nil)
    }
}

/// One directory entry: its name's bytes and whether it is a directory.
struct ListingEntry {
    var name: [UInt8]
    var isDirectory: Bool
}

/// The state of one page's descent.
struct ListingWalk {
    let prefix: [UInt8]
    let delimiter: [UInt8]?
    /// Entries at or before this key are not returned (the continuation or start-after key).
    let after: [UInt8]?
    let limit: Int

    var objects: [ObjectInfo] = []
    var prefixes: [String] = []
    /// The last entry returned (object key or common prefix): the next page's continuation.
    var last: [UInt8]?
    /// The last common prefix returned: keys under it are skipped.
    var rolledUp: [UInt8]?
    /// Set when an entry past a full page was found.
    var truncated = false

    init(prefix: [UInt8], delimiter: [UInt8]?, after: [UInt8]?, limit: Int) {
        self.prefix = prefix
        self.delimiter = delimiter
        self.after = after
        self.limit = limit
    }

    /// Lists `dir`, whose keys start with `key` (empty or ending in "/"). Returns true to stop.
    mutating func visit(_ store: FileStore, dir: String, key: [UInt8]) -> Bool {
        // Only the entries that can hold a key to return, then taken in key order.
        var filter = EntryFilter(key: key, prefix: prefix, after: after)
        let entries = ListingWalk.readEntries(dir, atRoot: key.isEmpty, filter: &filter)
        var candidates: [[UInt8]] = []
        var isDirectory: [Bool] = []
        candidates.reserveCapacity(entries.count)
        for e in entries {
            var full = key
            full.append(contentsOf: e.name)
            if e.isDirectory { full.append(0x2F) }
            candidates.append(full)
            isDirectory.append(e.isDirectory)
        }
        let keys = candidates
        var heap = IndexHeap(count: keys.count) { ListingWalk.precedes(keys[$0], keys[$1]) }
        while let i = heap.pop() {
            let full = keys[i]
            if let rolledUp, ListingWalk.hasPrefix(full, rolledUp) { continue }
            if !isDirectory[i] {
                if emit(store, key: full) { return true }
                continue
            }
            let path = dir + "/" + String(decoding: full[key.count..<(full.count - 1)], as: UTF8.self)
            if let common = commonPrefix(of: full) {
                // Every key below rolls up into `common`: return it once if any key below counts.
                if let after, common == after { continue }
                if !containsKey(path, key: full) { continue }
                if add(prefix: common) { return true }
            } else if visit(store, dir: path, key: full) {
                return true
            }
        }
        return false
    }

    /// Handles one object key in order. Returns true to stop.
    private mutating func emit(_ store: FileStore, key: [UInt8]) -> Bool {
        if let common = commonPrefix(of: key) {
            if let after, common == after { return false }
            return add(prefix: common)
        }
        if objects.count + prefixes.count >= limit {
            truncated = true
            return true
        }
        let name = String(decoding: key, as: UTF8.self)
        // Gone since readdir (a concurrent delete), or not a regular file: not listed.
        guard let st = store.statRegular(store.root.path + "/" + name) else { return false }
        objects.append(store.info(key: name, st: st))
        last = key
        return false
    }

    private mutating func add(prefix common: [UInt8]) -> Bool {
        if objects.count + prefixes.count >= limit {
            truncated = true
            return true
        }
        prefixes.append(String(decoding: common, as: UTF8.self))
        last = common
        rolledUp = common
        return false
    }

    /// The common prefix `key` rolls up into: up to the first delimiter after the prefix. For a
    /// directory's key ("a/b/"), found only when the delimiter lies within it, and then every key
    /// below rolls up the same way (an occurrence starting earlier can't straddle the end of the
    /// directory's key: being as long, it would end earlier).
    private func commonPrefix(of key: [UInt8]) -> [UInt8]? {
        guard let delimiter, ListingWalk.hasPrefix(key, prefix), key.count - prefix.count >= delimiter.count else {
            return nil
        }
        var i = prefix.count
        while i + delimiter.count <= key.count {
            if key[i] == delimiter[0] && key[i..<(i + delimiter.count)].elementsEqual(delimiter) {
                return Array(key[..<(i + delimiter.count)])
            }
            i += 1
        }
        return nil
    }

    /// Whether the directory holds (at any depth) an object key after `after`: a directory left
    /// empty by deletes holds none. Keys below `key` all start with the prefix here.
    private func containsKey(_ dir: String, key: [UInt8]) -> Bool {
        var filter = EntryFilter(key: key, prefix: prefix, after: after)
        for e in ListingWalk.readEntries(dir, atRoot: false, filter: &filter) {
            if !e.isDirectory { return true }
            var full = key
            full.append(contentsOf: e.name)
            full.append(0x2F)
            if containsKey(dir + "/" + String(decoding: e.name, as: UTF8.self), key: full) { return true }
        }
        return false
    }

    /// The directories and regular files in `dir` that `filter` keeps (one readdir; a stat only
    /// where the file system does not report the type; no allocation for an entry left out).
    /// Symbolic links and other types are not objects.
    static func readEntries(_ dir: String, atRoot: Bool, filter: inout EntryFilter) -> [ListingEntry] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var entries: [ListingEntry] = []
        while let ent = readdir(d) {
            let type = ent.pointee.d_type
            let entry: ListingEntry? = withUnsafeBytes(of: &ent.pointee.d_name) { raw in
                let bytes = raw.bindMemory(to: UInt8.self)
                let name = UnsafeBufferPointer(rebasing: bytes[..<(bytes.firstIndex(of: 0) ?? bytes.count)])
                if name.count <= 2 && name.allSatisfy({ $0 == 0x2E }) { return nil }  // "." and ".."
                if atRoot && name.elementsEqual(internalNameBytes) { return nil }
                var isDirectory: Bool
                switch type {
                case 4: isDirectory = true  // DT_DIR
                case 8: isDirectory = false  // DT_REG
                case 0:  // DT_UNKNOWN
                    var st = stat()
                    let path = dir + "/" + String(decoding: name, as: UTF8.self)
                    guard lstat(path, &st) == 0 else { return nil }
                    guard (st.st_mode & S_IFMT) == S_IFDIR || (st.st_mode & S_IFMT) == S_IFREG else { return nil }
                    isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
                default: return nil
                }
                guard filter.keeps(name, isDirectory: isDirectory) else { return nil }
                return ListingEntry(name: Array(name), isDirectory: isDirectory)
            }
            if let entry { entries.append(entry) }
        }
        return entries
    }

    static let internalNameBytes = Array(FileStore.internalName.utf8)

    /// `a` < `b` as UTF-8 bytes (S3's key order).
    static func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let n = min(a.count, b.count)
        let c = a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in n == 0 ? 0 : memcmp(pa.baseAddress!, pb.baseAddress!, n) }
        }
        return c != 0 ? c < 0 : a.count < b.count
    }

    static func hasPrefix(_ a: [UInt8], _ p: [UInt8]) -> Bool {
        guard a.count >= p.count else { return false }
        if p.isEmpty { return true }
        return a.withUnsafeBufferPointer { pa in
            p.withUnsafeBufferPointer { pp in memcmp(pa.baseAddress!, pp.baseAddress!, p.count) == 0 }
        }
    }
}

/// Whether an entry of the directory whose keys start with `key` can hold a key to list: under
/// the prefix, and after the start key (a directory also when the start key lies inside it). The
/// walk opens only directories compatible with both, so only their parts beyond `key` matter.
struct EntryFilter {
    /// The prefix's bytes beyond `key` (nil: every key here has the prefix).
    private let prefixTail: [UInt8]?
    private enum After {
        case everything
        case nothing
        case beyond([UInt8])
    }
    private let after: After
    /// The entry's name, with "/" after a directory's: its key beyond `key` (reused, no allocation).
    private var scratch: [UInt8] = []

    init(key: [UInt8], prefix: [UInt8], after start: [UInt8]?) {
        prefixTail = prefix.count > key.count ? Array(prefix[key.count...]) : nil
        if let start {
            if ListingWalk.hasPrefix(start, key) {
                after = .beyond(Array(start[key.count...]))
            } else {
                after = ListingWalk.precedes(start, key) ? .everything : .nothing
            }
        } else {
            after = .everything
        }
        scratch.reserveCapacity(257)
    }

    mutating func keeps(_ name: UnsafeBufferPointer<UInt8>, isDirectory: Bool) -> Bool {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: name)
        if isDirectory { scratch.append(0x2F) }
        if let p = prefixTail {
            let ok =
                ListingWalk.hasPrefix(scratch, p) || (isDirectory && ListingWalk.hasPrefix(p, scratch))
            if !ok { return false }
        }
        switch after {
        case .everything: return true
        case .nothing: return false
        case .beyond(let a):
            return ListingWalk.precedes(a, scratch) || (isDirectory && ListingWalk.hasPrefix(a, scratch))
        }
    }
}

/// A binary min-heap of the indices 0..<count under `less`: built in O(count), each pop
/// O(log count), so a page out of a large directory does not sort all of it.
struct IndexHeap {
    private var items: [Int]
    private let less: (Int, Int) -> Bool

    init(count: Int, less: @escaping (Int, Int) -> Bool) {
        items = Array(0..<count)
        self.less = less
        var i = count / 2 - 1
        while i >= 0 {
            siftDown(i)
            i -= 1
        }
    }

    mutating func pop() -> Int? {
        guard let top = items.first else { return nil }
        let tail = items.removeLast()
        if !items.isEmpty {
            items[0] = tail
            siftDown(0)
        }
        return top
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < items.count && less(items[l], items[m]) { m = l }
            if r < items.count && less(items[r], items[m]) { m = r }
            if m == i { return }
            items.swapAt(i, m)
            i = m
        }
    }
}
