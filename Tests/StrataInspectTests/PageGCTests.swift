import Foundation
import StrataCore
import StrataFileStore
import StrataInspect
import StrataTestSupport
import XCTest

/// GC marking (SPEC 14) on hand-built page versions: long chains, merged chains, new bases, pins.
final class PageGCTests: XCTestCase {
    func setUpWorld(_ store: any ObjectStore) throws -> (CompactionWorld, PageVersionBuilder) {
        let w = CompactionWorld(store: store)
        try w.produce(["lines": (0..<200).map { .upsert("r\($0)", w.row($0)) }])
        XCTAssertNotNil(try w.compactor().compact(collection: "lines").newVersion)
        return (w, try PageVersionBuilder(store: store, layout: w.layout, collection: "lines"))
    }

    func objects(_ store: any ObjectStore, _ layout: Layout) throws -> Set<String> {
        Set(try store.list(prefix: layout.objectsPrefix("lines")).map(\.key))
    }

    /// Every version that remains materializes byte-identical from an empty cache.
    func assertRetainedVersionsMaterialize(_ store: any ObjectStore, _ b: PageVersionBuilder, line: UInt = #line) throws
    {
        let remaining = try SnapshotLocator(store: store, layout: Layout()).versions("lines")
        XCTAssertFalse(remaining.isEmpty, line: line)
        for v in remaining {
            let dir = TempDir(prefix: "strata-gc-cold")
            let c = try ReaderCache(store: store, layout: Layout(), settings: ReaderCacheSettings(directory: dir.path))
                .open("lines", version: v)
            XCTAssertTrue(filesEqual(c.path, b.expected[v]!), "version \(v) after gc", line: line)
            c.close()
        }
    }

    func testGCWithLongChainsMergesNewBasesAndPinsNeverBreaksARetainedVersion() throws {
        let store = try S3TestStore.make("pagegc")
        let (w, b) = try setUpWorld(store)
        let v1 = b.version
        // A long chain on the whole-file version v1 (its snapshot.sqlite3 is the base).
        var chain: [String] = []
        for i in 0..<12 { chain.append(try b.publish(rows: 15, overwrite: ["r\(i)"])) }
        let chainPatches = Set(b.patches.map(\.key))
        // Pin a version in the middle of that chain; then merge the chain and write a new base.
        let pinned = chain[4]
        let pin = try ReaderPins(store: store, layout: w.layout).pin("lines", version: pinned, ttl: 3600)
        let merged = try b.mergeChain()
        let mergedPatch = b.patches[0].key
        let newBase = try b.newBase()
        for _ in 0..<3 { try b.publish(rows: 10) }
        let head = b.version

        let gc = GarbageCollector(store: store, layout: w.layout, policy: GCPolicy(keepVersions: 2, grace: 0))
        let plan = try gc.plan()
        XCTAssertEqual(try gc.execute(plan).map(\.key), [])
        let remaining = Set(try SnapshotLocator(store: store, layout: w.layout).versions("lines"))
        // The newest two, the pinned one, and a whole-file v1 (its file is the pinned version's base).
        XCTAssertTrue(remaining.isSuperset(of: [head, pinned]), "\(remaining)")
        if b.startedFromWholeFile { XCTAssertTrue(remaining.contains(v1), "\(remaining)") }
        XCTAssertFalse(remaining.contains(merged), "\(remaining)")
        XCTAssertFalse(remaining.contains(newBase), "\(remaining)")
        // Objects: the pinned version's chain stays (up to its patch); the merged patch, which only
        // expired versions use, is swept; the new base stays (the head builds on it).
        let left = try objects(store, w.layout)
        let pinnedManifest = try SnapshotManifest.fetch(
            from: store, layout: w.layout, collection: "lines", version: pinned)
        XCTAssertTrue(left.isSuperset(of: pinnedManifest.patches!.map(\.key)))
        XCTAssertFalse(left.contains(mergedPatch), "the merged patch is referenced by no retained version")
        XCTAssertTrue(left.contains(b.base.key))
        XCTAssertTrue(
            chainPatches.subtracting(pinnedManifest.patches!.map(\.key)).isDisjoint(with: left),
            "patches after the pinned one are referenced by no retained version")
        XCTAssertTrue(plan.items.contains { $0.kind == .object && $0.key == mergedPatch })
        try assertRetainedVersionsMaterialize(store, b)

        // The pin expires (removed): the pinned version and v1 go, and their chain with them.
        try ReaderPins(store: store, layout: w.layout).remove("lines", pinId: pin.pinId)
        _ = try gc.execute(try gc.plan())
        let after = Set(try SnapshotLocator(store: store, layout: w.layout).versions("lines"))
        XCTAssertFalse(after.contains(pinned))
        XCTAssertFalse(after.contains(v1))
        XCTAssertTrue(after.contains(head))
        XCTAssertEqual(try objects(store, w.layout), Set(b.head.objectKeys(layout: w.layout)))
        try assertRetainedVersionsMaterialize(store, b)
    }

    func testObjectsOfAPublishInFlightAndYoungObjectsStayAndExpiredPinsGo() throws {
        let dir = TempDir(prefix: "strata-pagegc")
        let store = try FileStore(root: URL(fileURLWithPath: dir.path))
        let (w, b) = try setUpWorld(store)
        for _ in 0..<3 { try b.publish(rows: 10) }
        // An object no manifest names yet (a publish in flight).
        let inflight = w.layout.versionObjectKey(
            collection: "lines", kind: .patch, sha256: String(repeating: "e", count: 64))
        try store.put(inflight, data: Data("in flight".utf8))
        // An expired pin, and an unexpired one on the head.
        let pins = ReaderPins(store: store, layout: w.layout)
        let expired = try pins.pin("lines", version: b.version, ttl: 1, now: Date(timeIntervalSinceNow: -7200))
        let live = try pins.pin("lines", version: b.version, ttl: 3600)
        let gc = GarbageCollector(store: store, layout: w.layout, policy: GCPolicy(keepVersions: 1, grace: 3600))
        let plan = try gc.plan()
        XCTAssertFalse(plan.items.contains { $0.key == inflight }, "younger than the grace period")
        XCTAssertTrue(plan.items.contains { $0.kind == .expiredPin && $0.key.contains(expired.pinId) })
        XCTAssertFalse(plan.items.contains { $0.key.contains(live.pinId) })
        _ = try gc.execute(plan)
        XCTAssertEqual(try pins.list("lines").pins.map(\.pinId), [live.pinId])
        // With no grace the in-flight object goes; every object of a retained version stays.
        let gc0 = GarbageCollector(store: store, layout: w.layout, policy: GCPolicy(keepVersions: 1, grace: 0))
        _ = try gc0.execute(try gc0.plan())
        XCTAssertNil(try store.head(inflight))
        XCTAssertEqual(
            try objects(store, w.layout),
            Set(b.head.objectKeys(layout: w.layout)).filter { $0.hasPrefix(w.layout.objectsPrefix("lines")) })
        try assertRetainedVersionsMaterialize(store, b)
    }

    /// A pin that cannot be read keeps everything (what it pins is unknown); a manifest that
    /// cannot be read keeps every object.
    func testUnreadablePinsAndManifestsKeepEverything() throws {
        let dir = TempDir(prefix: "strata-pagegc")
        let store = try FileStore(root: URL(fileURLWithPath: dir.path))
        let (w, b) = try setUpWorld(store)
        for _ in 0..<3 { try b.publish(rows: 10) }
        try b.mergeChain()
        try b.publish(rows: 10)
        let before = try objects(store, w.layout)
        let badPin = w.layout.pinKey(collection: "lines", pinId: Identifiers.make())
        try store.put(badPin, data: Data("{not json".utf8))
        let gc = GarbageCollector(store: store, layout: w.layout, policy: GCPolicy(keepVersions: 1, grace: 0))
        var plan = try gc.plan()
        XCTAssertFalse(plan.items.contains { $0.kind == .object || $0.kind == .version }, "\(plan.items)")
        XCTAssertTrue(plan.kept.contains { $0.contains("unreadable pin") }, "\(plan.kept)")
        try store.delete(badPin)
        // A pinned version whose manifest cannot be read: what it references is unknown, so every
        // object stays (versions that nobody needs still go).
        let odd = Identifiers.make()
        try store.put(w.layout.manifestKey(collection: "lines", version: odd), data: Data("garbage".utf8))
        let pin = PinRecord(
            pinId: Identifiers.make(), collection: "lines", version: odd, createdAt: Date(),
            expiresAt: Date(timeIntervalSinceNow: 3600), owner: "test")
        try store.put(
            w.layout.pinKey(collection: "lines", pinId: pin.pinId), data: try StrataJSON.encoder().encode(pin))
        plan = try gc.plan()
        XCTAssertFalse(plan.items.contains { $0.kind == .object }, "\(plan.items)")
        XCTAssertTrue(plan.kept.contains { $0.contains("cannot be read") }, "\(plan.kept)")
        _ = try gc.execute(plan)
        XCTAssertEqual(try objects(store, w.layout), before)
        // Without that pin, the merged chain's old patches go.
        try store.delete(w.layout.pinKey(collection: "lines", pinId: pin.pinId))
        _ = try gc.execute(try gc.plan())
        XCTAssertEqual(try objects(store, w.layout), Set(b.head.objectKeys(layout: w.layout)).intersection(before))
        try assertRetainedVersionsMaterialize(store, b)
    }
}
