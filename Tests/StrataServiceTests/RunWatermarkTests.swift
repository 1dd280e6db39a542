import Foundation
import StrataCore
import StrataFileStore
import StrataProducer
import StrataTestSupport
import Synchronization
import XCTest

@testable import StrataCompactor

/// Counts the objects every listing returns.
final class ListCountingStore: ObjectStoreDecorator, StartAfterListing, Sendable {
    let inner: FileStore
    var base: any ObjectStore { inner }
    private let listed = Mutex(0)
    init(_ inner: FileStore) { self.inner = inner }
    var location: String { inner.location }
    var objectsListed: Int { listed.withLock { $0 } }
    func count(_ p: ListPage) -> ListPage {
        listed.withLock { $0 += p.objects.count }
        return p
    }
    func head(_ key: String) throws -> ObjectInfo? { try inner.head(key) }
    func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo {
        try inner.get(key, toFile: path, range: range)
    }
    func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) { try inner.getData(key) }
    func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws -> ObjectInfo {
        try inner.put(key, body: body, condition: condition, options: options)
    }
    func delete(_ key: String) throws { try inner.delete(key) }
    func delete(keys: [String]) throws -> [DeleteFailure] { try inner.delete(keys: keys) }
    func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws -> ListPage {
        count(try inner.listPage(prefix: prefix, delimiter: delimiter, continuation: continuation, maxKeys: maxKeys))
    }
    func listPage(
        prefix: String, delimiter: String?, startAfter: String?, continuation: String?,
        maxKeys: Int
    ) throws -> ListPage {
        count(
            try inner.listPage(
                prefix: prefix, delimiter: delimiter, startAfter: startAfter,
                continuation: continuation, maxKeys: maxKeys))
    }
}

final class RunWatermarkTests: XCTestCase {
    /// Old run records (a day ago) are listed by the first pass only; later passes start after the
    /// watermark minus the lookback, still find new runs, and the periodic full listing finds a
    /// record that arrived later than the lookback.
    func testPassesAfterTheFirstListOnlyRecentRecords() throws {
        let tmp = TempDir(prefix: "strata-watermark")
        let store = ListCountingStore(try FileStore(root: URL(fileURLWithPath: tmp.file("store"))))
        let world = CompactionWorld(store: store)
        let dayAgo = Date().addingTimeInterval(-86_400)
        for i in 0..<1500 {
            // Records of another collection: listed by a full pass, read once, never pending here.
            let id =
                Identifiers.timestamp(millis: Int64(dayAgo.timeIntervalSince1970 * 1000) + Int64(i)) + "-000000000000"
            let record = RunRecord(
                runId: id, createdAt: Identifiers.date(of: id)!,
                collections: [
                    .init(
                        collection: "words", key: world.layout.deltaKey(collection: "words", runId: id), size: 10,
                        sha256: String(repeating: "ab", count: 32), upserts: 1, deletes: 0, dimension: world.dimension)
                ], labels: [:])
            try store.put(world.layout.runRecordKey(id), data: try record.encoded())
        }
        try world.produce(["lines": [.upsert("a", world.row(1))]])
        let compactor = world.compactor {
            $0.runLookback = 600
            $0.fullListingEvery = 3
        }
        var before = store.objectsListed
        XCTAssertEqual(try compactor.compact(collection: "lines").runsApplied.count, 1)
        XCTAssertGreaterThanOrEqual(store.objectsListed - before, 1501, "the first pass lists everything")

        try world.produce(["lines": [.upsert("b", world.row(2))]])
        before = store.objectsListed
        XCTAssertEqual(try compactor.compact(collection: "lines").runsApplied.count, 1)
        let listed = store.objectsListed - before
        XCTAssertLessThan(listed, 10, "the second pass listed \(listed) objects")

        // A record whose id is older than watermark − lookback, written now: missed by pass 3,
        // found by pass 4 (a full listing, fullListingEvery = 3).
        let oldId = Identifiers.timestamp(millis: Int64(dayAgo.timeIntervalSince1970 * 1000) + 5000) + "-0123456789ab"
        let input = tmp.file("late.ndjson")
        let v = world.vector(3).map { String($0) }.joined(separator: ",")
        try "{\"id\":\"c\",\"embedding\":[\(v)]}\n".write(toFile: input, atomically: false, encoding: .utf8)
        _ = try RunProducer(store: store, layout: world.layout)
            .produce(
                inputs: [ProducerInput(collection: "lines", path: input, dimension: world.dimension)], runId: oldId)
        XCTAssertEqual(try compactor.compact(collection: "lines").outcome, .upToDate)
        XCTAssertEqual(try compactor.compact(collection: "lines").runsApplied, [oldId])
    }
}
