/// The best `k` entries seen so far, as a binary min-heap whose root is the worst kept entry, so
/// a row that cannot make the cut costs one comparison and no allocation. Memory O(min(k, rows)).
///
/// Order: a higher key is better; equal keys are broken by id in byte order, smaller first, so
/// the result does not depend on the order rows arrive in.
struct TopKHeap {
    struct Entry {
        var key: Float
        var id: String
    }

    let k: Int
    private(set) var entries: [Entry] = []

    init(k: Int) {
        self.k = k
        // Reserve for small k only: a huge k must not allocate before rows arrive.
        entries.reserveCapacity(min(k, 1024))
    }

    /// True when `a` ranks below `b`.
    @inline(__always)
    static func worse(_ a: Entry, _ b: Entry) -> Bool {
        if a.key != b.key { return a.key < b.key }
        return b.id.utf8.lexicographicallyPrecedes(a.id.utf8)
    }

    /// Offers a row whose id is given as UTF-8 bytes; the String is made only if it is kept.
    @inline(__always)
    mutating func offer(key: Float, id: UnsafeRawBufferPointer) {
        if entries.count == k {
            let root = entries[0]
            if key < root.key { return }
            // Equal key: kept only if the id sorts before the root's.
            if key == root.key, !id.lexicographicallyPrecedes(root.id.utf8) { return }
            entries[0] = Entry(key: key, id: String(decoding: id, as: UTF8.self))
            siftDown(0)
        } else {
            entries.append(Entry(key: key, id: String(decoding: id, as: UTF8.self)))
            siftUp(entries.count - 1)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard TopKHeap.worse(entries[i], entries[parent]) else { return }
            entries.swapAt(i, parent)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = entries.count
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < n, TopKHeap.worse(entries[l], entries[m]) { m = l }
            if r < n, TopKHeap.worse(entries[r], entries[m]) { m = r }
            if m == i { return }
            entries.swapAt(i, m)
            i = m
        }
    }

    /// The kept entries, best first.
    func sortedBestFirst() -> [Entry] {
        entries.sorted { TopKHeap.worse($1, $0) }
    }
}
