import Foundation
import StrataCore
import StrataTestSupport
import XCTest

/// One behavioural suite for every `ObjectStore` (file and S3): each implementation's test class
/// calls these checks from its own test methods, so both are held to the same semantics.
struct StoreConformance {
    let store: any ObjectStore
    /// Every key this suite writes lives under this prefix, so runs do not see each other.
    let base: String
    let tmp = TempDir(prefix: "strata-conf")

    init(store: any ObjectStore) {
        self.store = store
        base = "conf-\(UInt32.random(in: 0...UInt32.max))/"
    }

    func key(_ name: String) -> String { base + name }

    func putGetHeadRoundTrip() throws {
        let k = key("a/b/object.bin")
        let body = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let put = try store.put(k, data: body)
        XCTAssertEqual(put.size, Int64(body.count))
        XCTAssertFalse(put.etag.isEmpty)

        let head = try XCTUnwrap(try store.head(k))
        XCTAssertEqual(head.size, Int64(body.count))
        XCTAssertEqual(head.etag, put.etag)

        let (data, info) = try store.getData(k)
        XCTAssertEqual(data, body)
        XCTAssertEqual(info.etag, put.etag)

        let dest = tmp.file("out.bin")
        try Data("old contents".utf8).write(to: URL(fileURLWithPath: dest))
        let got = try store.get(k, toFile: dest)
        XCTAssertEqual(got.size, Int64(body.count))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)), body)
    }

    func putFromFile() throws {
        let src = tmp.file("src.bin")
        let body = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 >> 3) })
        try body.write(to: URL(fileURLWithPath: src))
        let k = key("from-file.bin")
        let put = try store.put(k, file: src)
        XCTAssertEqual(put.size, Int64(body.count))
        XCTAssertEqual(try store.getData(k).data, body)
    }

    func emptyObject() throws {
        let k = key("empty")
        try store.put(k, data: Data())
        XCTAssertEqual(try store.head(k)?.size, 0)
        XCTAssertEqual(try store.getData(k).data, Data())
        let dest = tmp.file("empty.out")
        try store.get(k, toFile: dest)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)).count, 0)
    }

    func missingKeys() throws {
        let k = key("does/not/exist")
        XCTAssertNil(try store.head(k))
        XCTAssertThrowsError(try store.getData(k)) { XCTAssertTrue($0.isStoreError(.notFound), "\($0)") }
        let dest = tmp.file("missing.out")
        XCTAssertThrowsError(try store.get(k, toFile: dest)) { XCTAssertTrue($0.isStoreError(.notFound), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest), "a failed get must not leave a file")
        XCTAssertNil(try store.getDataIfExists(k))
        try store.delete(k)  // deleting a missing key succeeds
    }

    func ranges() throws {
        let k = key("ranged")
        let body = Data((0..<10_000).map { UInt8(truncatingIfNeeded: $0) })
        try store.put(k, data: body)
        let dest = tmp.file("range.out")
        try store.get(k, toFile: dest, range: 100..<1100)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)), body.subdata(in: 100..<1100))
        try store.get(k, toFile: dest, range: 9_990..<20_000)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)), body.subdata(in: 9_990..<10_000))
    }

    func overwriteChangesETag() throws {
        let k = key("overwrite")
        let a = try store.put(k, data: Data("one".utf8))
        let b = try store.put(k, data: Data("two, longer".utf8))
        XCTAssertNotEqual(a.etag, b.etag)
        XCTAssertEqual(try store.getData(k).data, Data("two, longer".utf8))
        // Same length, different bytes: the ETag must still change.
        let c = try store.put(k, data: Data("TWO, LONGER".utf8))
        XCTAssertNotEqual(b.etag, c.etag)
    }

    func conditionalWrites() throws {
        let k = key("cond/pointer.txt")
        let first = try store.put(k, data: Data("v1\n".utf8), condition: .ifNoneMatch)
        XCTAssertThrowsError(try store.put(k, data: Data("v1b\n".utf8), condition: .ifNoneMatch)) {
            XCTAssertTrue($0.isStoreError(.preconditionFailed), "\($0)")
        }
        let second = try store.put(k, data: Data("v2\n".utf8), condition: .ifMatch(first.etag))
        XCTAssertThrowsError(try store.put(k, data: Data("v3\n".utf8), condition: .ifMatch(first.etag))) {
            XCTAssertTrue($0.isStoreError(.preconditionFailed), "\($0)")
        }
        XCTAssertEqual(try store.getData(k).data, Data("v2\n".utf8), "a refused write must change nothing")
        XCTAssertEqual(try store.head(k)?.etag, second.etag)
        XCTAssertThrowsError(try store.put(key("cond/missing"), data: Data("x".utf8), condition: .ifMatch(first.etag)))
        {
            XCTAssertTrue($0.isStoreError(.preconditionFailed) || $0.isStoreError(.notFound), "\($0)")
        }
        XCTAssertNil(try store.head(key("cond/missing")))
    }

    /// Eight writers race to create one key: exactly one wins.
    func createOnlyRace() throws {
        let k = key("race/create")
        let results = Locked<[Bool]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                try store.put(k, data: Data("writer \(i)".utf8), condition: .ifNoneMatch)
                results.update { $0.append(true) }
            } catch {
                XCTAssertTrue(error.isStoreError(.preconditionFailed), "\(error)")
                results.update { $0.append(false) }
            }
        }
        XCTAssertEqual(results.value.filter { $0 }.count, 1)
        XCTAssertEqual(results.value.count, 8)
    }

    /// Compare-and-swap increments from four threads: no update is lost.
    func compareAndSwapCounter() throws {
        let k = key("race/counter")
        try store.put(k, data: Data("0".utf8), condition: .ifNoneMatch)
        let perThread = 10
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            var done = 0
            while done < perThread {
                do {
                    let (data, info) = try store.getData(k)
                    let n = Int(String(decoding: data, as: UTF8.self))!
                    try store.put(k, data: Data(String(n + 1).utf8), condition: .ifMatch(info.etag))
                    done += 1
                } catch let e as StoreError where e.kind == .preconditionFailed {
                    continue
                } catch {
                    XCTFail("\(error)")
                    return
                }
            }
        }
        XCTAssertEqual(String(decoding: try store.getData(k).data, as: UTF8.self), String(4 * perThread))
    }

    func listing() throws {
        let names = ["l/a", "l/b/1", "l/b/2", "l/b/3/x", "l/c", "l/c0", "l/d/1", "l2/z", "l/\u{00e9}t\u{00e9}", "l/B"]
        for n in names { try store.put(key(n), data: Data(n.utf8)) }

        let all = try store.list(prefix: key("l/")).map { String($0.key.dropFirst(base.count)) }
        let expected = names.filter { $0.hasPrefix("l/") }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        XCTAssertEqual(all, expected, "lexicographic UTF-8 byte order")

        // Pagination with a tiny page size yields the same sequence, with no repeats.
        var paged: [String] = []
        var pages = 0
        try store.forEachPage(prefix: key("l/"), delimiter: nil, pageSize: 3) { page in
            pages += 1
            XCTAssertLessThanOrEqual(page.objects.count, 3)
            paged += page.objects.map { String($0.key.dropFirst(base.count)) }
        }
        XCTAssertEqual(paged, expected)
        XCTAssertGreaterThanOrEqual(pages, 3)

        // Delimiter: objects directly below, and one common prefix per "directory".
        let dir = try store.listDirectory(prefix: key("l/"))
        XCTAssertEqual(
            dir.objects.map { String($0.key.dropFirst(base.count)) },
            ["l/B", "l/a", "l/c", "l/c0", "l/\u{00e9}t\u{00e9}"])
        XCTAssertEqual(dir.prefixes.map { String($0.dropFirst(base.count)) }, ["l/b/", "l/d/"])

        // Delimiter with pagination (page size 2) gives the same union.
        var objs: [String] = []
        var prefixes: [String] = []
        try store.forEachPage(prefix: key("l/"), delimiter: "/", pageSize: 2) { page in
            objs += page.objects.map { String($0.key.dropFirst(base.count)) }
            prefixes += page.commonPrefixes.map { String($0.dropFirst(base.count)) }
        }
        XCTAssertEqual(objs, ["l/B", "l/a", "l/c", "l/c0", "l/\u{00e9}t\u{00e9}"])
        XCTAssertEqual(prefixes, ["l/b/", "l/d/"])

        // A prefix that is not a whole segment.
        XCTAssertEqual(
            try store.list(prefix: key("l/c")).map { String($0.key.dropFirst(base.count)) }, ["l/c", "l/c0"])
        XCTAssertEqual(try store.list(prefix: key("nothing-here/")).count, 0)
    }

    /// Start-after and delimiters in one flat "directory" (how `runs/` is laid out): byte order
    /// ('-' 0x2D < '.' 0x2E < '0'), start-after at and between keys, page ends.
    func listingFlatStartAfter() throws {
        let names = ["f/a", "f/a-z", "f/a.b", "f/a.c", "f/a0", "f/ab", "f/b.json", "f/b0.json"]
        for n in names { try store.put(key(n), data: Data(n.utf8)) }
        let expected = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        XCTAssertEqual(expected, names)
        func strip(_ k: String) -> String { String(k.dropFirst(base.count)) }
        func after(_ start: String?, delimiter: String? = nil, maxKeys: Int = 1000) throws
            -> (objects: [String], prefixes: [String], continuation: Bool)
        {
            let page = try store.listPageAfter(
                prefix: key("f/"), delimiter: delimiter, startAfter: start.map(key), continuation: nil,
                maxKeys: maxKeys)
            return (page.objects.map { strip($0.key) }, page.commonPrefixes.map(strip), page.continuation != nil)
        }
        XCTAssertEqual(try after(nil).objects, expected)
        for (i, k) in expected.enumerated() {
            XCTAssertEqual(try after(k).objects, Array(expected.dropFirst(i + 1)), k)
            XCTAssertEqual(try after(k + "\u{0001}").objects, Array(expected.dropFirst(i + 1)), k)
        }
        XCTAssertEqual(try after("f/a.a").objects, Array(expected.dropFirst(2)))
        let one = try after("f/a.b", maxKeys: 1)
        XCTAssertEqual(one.objects, ["f/a.c"])
        XCTAssertTrue(one.continuation)
        let last = try after("f/b.json", maxKeys: 1)
        XCTAssertEqual(last.objects, ["f/b0.json"])
        XCTAssertFalse(last.continuation)
    }

    /// Byte order where keys look like paths: "a.b" < "a/..." < "a0" ('.' 0x2E < '/' 0x2F < '0'),
    /// deep keys, start-after inside a subtree and equal to a common prefix, every page size (S3's
    /// order; SeaweedFS lists a directory's entries by name, "a/" before "a-z", so its test skips this).
    func listingOrderEdgeCases() throws {
        let names = [
            "o/a.b", "o/a/x", "o/a/x.y", "o/a/x0", "o/a0", "o/a-z", "o/a/y/z/deep/1", "o/a/y/z/deep/2",
            "o/a/y.z", "o/b", "o/a/y/z.q",
        ]
        for n in names { try store.put(key(n), data: Data(n.utf8)) }
        let expected = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        XCTAssertEqual(
            expected,
            [
                "o/a-z", "o/a.b", "o/a/x", "o/a/x.y", "o/a/x0", "o/a/y.z", "o/a/y/z.q", "o/a/y/z/deep/1",
                "o/a/y/z/deep/2", "o/a0", "o/b",
            ])
        func strip(_ k: String) -> String { String(k.dropFirst(base.count)) }
        XCTAssertEqual(try store.list(prefix: key("o/")).map { strip($0.key) }, expected)
        for size in 1...4 {
            var paged: [String] = []
            try store.forEachPage(prefix: key("o/"), delimiter: nil, pageSize: size) { page in
                XCTAssertLessThanOrEqual(page.objects.count, size)
                paged += page.objects.map { strip($0.key) }
            }
            XCTAssertEqual(paged, expected, "page size \(size)")
        }

        func after(_ start: String, delimiter: String? = nil, prefix: String = "o/", maxKeys: Int = 1000) throws
            -> (objects: [String], prefixes: [String])
        {
            let page = try store.listPageAfter(
                prefix: key(prefix), delimiter: delimiter, startAfter: key(start), continuation: nil,
                maxKeys: maxKeys)
            return (page.objects.map { strip($0.key) }, page.commonPrefixes.map(strip))
        }
        // Start-after deep inside a subtree, and at keys that are not objects.
        XCTAssertEqual(try after("o/a/y/z/deep/1").objects, ["o/a/y/z/deep/2", "o/a0", "o/b"])
        XCTAssertEqual(try after("o/a/y/z/deep/").objects, ["o/a/y/z/deep/1", "o/a/y/z/deep/2", "o/a0", "o/b"])
        XCTAssertEqual(try after("o/a/y/z/deep/9").objects, ["o/a0", "o/b"])
        XCTAssertEqual(try after("o/a/").objects, Array(expected.drop { $0 <= "o/a/" }))
        XCTAssertEqual(try after("o/a.c").objects, Array(expected.dropFirst(2)))
        XCTAssertEqual(try after("o/a/y/z/deep/1", maxKeys: 1).objects, ["o/a/y/z/deep/2"])

        // Delimiter: "o/a/" rolls up and sorts between "o/a.b" and "o/a0".
        let dir = try after("", delimiter: "/")
        XCTAssertEqual(dir.objects, ["o/a-z", "o/a.b", "o/a0", "o/b"])
        XCTAssertEqual(dir.prefixes, ["o/a/"])
        // Start-after equal to a common prefix skips everything under it (as a continuation does).
        XCTAssertEqual(try after("o/a/", delimiter: "/").objects, ["o/a0", "o/b"])
        XCTAssertEqual(try after("o/a/", delimiter: "/").prefixes, [])
        // Start-after inside a common prefix: keys after it remain below, so the prefix comes back.
        XCTAssertEqual(try after("o/a/x", delimiter: "/").prefixes, ["o/a/"])
        XCTAssertEqual(try after("o/a/x", delimiter: "/").objects, ["o/a0", "o/b"])
        XCTAssertEqual(try after("o/a/", delimiter: "/", prefix: "o/a/").prefixes, ["o/a/y/"])
        XCTAssertEqual(
            try after("o/a/", delimiter: "/", prefix: "o/a/").objects, ["o/a/x", "o/a/x.y", "o/a/x0", "o/a/y.z"])
        // A prefix ending mid-segment, with a delimiter.
        let mid = try after("", delimiter: "/", prefix: "o/a/y")
        XCTAssertEqual(mid.objects, ["o/a/y.z"])
        XCTAssertEqual(mid.prefixes, ["o/a/y/"])

        // Delimiter with pagination, page size 1: each page one entry, the union exact.
        var entries: [String] = []
        try store.forEachPage(prefix: key("o/"), delimiter: "/", pageSize: 1) { page in
            XCTAssertEqual(page.objects.count + page.commonPrefixes.count, 1)
            entries += page.objects.map { strip($0.key) } + page.commonPrefixes.map(strip)
        }
        XCTAssertEqual(entries, ["o/a-z", "o/a.b", "o/a/", "o/a0", "o/b"])

        // A delimiter other than "/".
        let dots = try after("", delimiter: ".")
        XCTAssertEqual(dots.prefixes, ["o/a.", "o/a/x.", "o/a/y.", "o/a/y/z."])
        XCTAssertEqual(
            dots.objects, ["o/a-z", "o/a/x", "o/a/x0", "o/a/y/z/deep/1", "o/a/y/z/deep/2", "o/a0", "o/b"])

        // Delimiter "." in a flat directory: "f/a.", "f/b." and "f/b0." roll up; start-after equal
        // to one skips what it holds.
        func flat(_ start: String?, delimiter: String) throws -> (objects: [String], prefixes: [String]) {
            let page = try store.listPageAfter(
                prefix: key("f/"), delimiter: delimiter, startAfter: start.map(key), continuation: nil,
                maxKeys: 1000)
            return (page.objects.map { strip($0.key) }, page.commonPrefixes.map(strip))
        }
        for n in ["f/a", "f/a-z", "f/a.b", "f/a.c", "f/a0", "f/ab", "f/b.json", "f/b0.json"] {
            try store.put(key(n), data: Data(n.utf8))
        }
        XCTAssertEqual(try flat(nil, delimiter: ".").prefixes, ["f/a.", "f/b.", "f/b0."])
        XCTAssertEqual(try flat(nil, delimiter: ".").objects, ["f/a", "f/a-z", "f/a0", "f/ab"])
        XCTAssertEqual(try flat("f/a.", delimiter: ".").prefixes, ["f/b.", "f/b0."])
        XCTAssertEqual(try flat("f/a.", delimiter: ".").objects, ["f/a0", "f/ab"])
        var dotEntries: [String] = []
        try store.forEachPage(prefix: key("f/"), delimiter: ".", pageSize: 1) { page in
            XCTAssertEqual(page.objects.count + page.commonPrefixes.count, 1)
            dotEntries += page.objects.map { strip($0.key) } + page.commonPrefixes.map(strip)
        }
        XCTAssertEqual(dotEntries, ["f/a", "f/a-z", "f/a.", "f/a0", "f/ab", "f/b.", "f/b0."])
    }

    func deletes() throws {
        let keys = (0..<5).map { key("del/\($0)") }
        for k in keys { try store.put(k, data: Data(k.utf8)) }
        try store.delete(keys[0])
        XCTAssertNil(try store.head(keys[0]))
        let failures = try store.delete(keys: Array(keys[1...]) + [key("del/never-existed")])
        XCTAssertEqual(failures, [])
        XCTAssertEqual(try store.list(prefix: key("del/")).count, 0)
    }

    /// Keys with characters that trip naive URL encoding or path handling.
    func awkwardKeys() throws {
        let names = [
            "with space.txt", "plus+sign", "equals=sign", "hash#tag", "percent%20literal", "tilde~x",
            "unicode-\u{00fc}\u{00f1}\u{00ee}\u{00e7}\u{00f8}d\u{00e9}-\u{65e5}\u{672c}", "deep/a/b/c/d.txt",
            "amp&and", "question?mark", "semi;colon", "comma,x", "paren(1)", "star*", "dollar$", "at@x",
            "colon:x", "quote'x", "emoji-\u{1F600}",
        ]
        for n in names {
            let k = key("odd/" + n)
            try store.put(k, data: Data(n.utf8))
            XCTAssertEqual(try store.head(k)?.size, Int64(n.utf8.count), n)
            XCTAssertEqual(try store.getData(k).data, Data(n.utf8), n)
        }
        let listed = Set(try store.list(prefix: key("odd/")).map { String($0.key.dropFirst(base.count + 4)) })
        XCTAssertEqual(listed, Set(names))
        XCTAssertEqual(try store.delete(keys: names.map { key("odd/" + $0) }), [])
        XCTAssertEqual(try store.list(prefix: key("odd/")).count, 0)
    }

    func probeReportsEnforced() throws {
        let report = try ConditionalWriteProbe.run(store: store, layout: Layout(prefix: base + "probe"))
        XCTAssertTrue(report.conditionalWritesEnforced, "\(report)")
        XCTAssertEqual(try store.list(prefix: base + "probe/").count, 0, "the probe cleans up")
    }
}
