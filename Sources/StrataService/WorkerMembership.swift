import Foundation
import Logging
import StrataCore
import Synchronization

/// One worker's heartbeat object (`.strata-workers/<worker>.json`).
public struct Heartbeat: Codable, Sendable, Equatable {
    public var format: String = "strata.heartbeat/1"
    public var workerId: String
    public var host: String
    public var pid: Int32
    public var startedAt: Date
    public var beatAt: Date
    /// Others count this worker as live until then.
    public var expiresAt: Date
}

/// How several compactor workers on one bucket split the collections without contending for
/// leases: each writes a heartbeat object (conditional writes: create with If-None-Match, renew
/// with If-Match on its own ETag), lists the others', and compacts the collections whose
/// rendezvous (highest-random-weight) hash among the live workers picks it. A worker that stops
/// heartbeating (killed) drops out after `ttl` and its collections move to the others; a worker
/// that stops cleanly deletes its heartbeat so they move at once. This only saves work: two
/// workers that disagree on membership both compact, the lease makes one skip, and the pointer's
/// conditional write keeps the result correct.
public final class WorkerMembership: Sendable {
    let store: any ObjectStore
    let layout: Layout
    public let workerId: String
    let host: String
    let ttl: Double
    let logger: Logger
    let startedAt = Date()
    private struct State {
        var etag: String?
        var lastBeat: Date?
        var lastLive: [String] = []
        var lastAssignment: [String]?
    }
    private let state = Mutex(State())

    public init(store: any ObjectStore, layout: Layout, workerId: String, host: String, ttl: Double, logger: Logger)
        throws
    {
        guard Layout.isValidWorkerId(workerId) else {
            throw StrataError(
                .invalidInput, object: "worker id \"\(workerId)\"", field: "compactor id",
                message: "is not 1 to 200 characters of A-Z a-z 0-9 . _ -",
                fix: "set a host name without other characters")
        }
        guard ttl > 0 else {
            throw StrataError(
                .invalidInput, object: "heartbeat", field: "ttl", message: "must be positive",
                fix: "pass a positive --lease-seconds")
        }
        self.store = store
        self.layout = layout
        self.workerId = workerId
        self.host = host
        self.ttl = ttl
        self.logger = logger
    }

    /// Heartbeats are renewed at least this often.
    public var beatInterval: Double { ttl / 3 }

    /// Writes (or renews) this worker's heartbeat.
    public func beat(now: Date = Date()) throws {
        let hb = Heartbeat(
            workerId: workerId, host: host, pid: getpid(), startedAt: startedAt, beatAt: now,
            expiresAt: now.addingTimeInterval(ttl))
        let body = try StrataJSON.encoder().encode(hb)
        let key = layout.heartbeatKey(worker: workerId)
        let current = state.withLock { $0.etag }
        let info: ObjectInfo
        do {
            info = try store.put(
                key, data: body, condition: current.map { .ifMatch($0) } ?? .ifNoneMatch,
                options: PutOptions(contentType: "application/json"))
        } catch let e as StoreError where e.kind == .preconditionFailed || e.kind == .notFound {
            // Our heartbeat was removed (a peer cleaned it up as expired) or replaced: write it anew.
            logger.notice("heartbeat replaced; writing it again", metadata: ["worker": "\(workerId)"])
            if let existing = try store.head(key) {
                info = try store.put(
                    key, data: body, condition: .ifMatch(existing.etag),
                    options: PutOptions(contentType: "application/json"))
            } else {
                info = try store.put(
                    key, data: body, condition: .ifNoneMatch,
                    options: PutOptions(contentType: "application/json"))
            }
        }
        state.withLock {
            $0.etag = info.etag
            $0.lastBeat = now
        }
    }

    /// The ids of the workers whose heartbeat has not expired, this one included, sorted.
    public func liveWorkers(now: Date = Date()) throws -> [String] {
        var live: Set<String> = [workerId]
        try store.forEachPage(prefix: layout.workersPrefix, delimiter: nil) { page in
            for o in page.objects {
                guard let id = layout.workerId(fromHeartbeatKey: o.key), id != workerId else { continue }
                guard let (data, _) = try store.getDataIfExists(o.key),
                    let hb = try? StrataJSON.decode(Heartbeat.self, from: data, object: o.key),
                    hb.workerId == id
                else { continue }
                if hb.expiresAt > now { live.insert(id) }
            }
        }
        return live.sorted()
    }

    /// The collections of `all` that this worker compacts now. Renews the heartbeat when due. On a
    /// store failure it keeps the last assignment (all collections before the first), so a worker
    /// that cannot see its peers still works; the leases and the pointer keep that correct.
    public func assign(_ all: [String], now: Date = Date()) -> [String] {
        do {
            let lastBeat = state.withLock { $0.lastBeat }
            let due = lastBeat.map { now.timeIntervalSince($0) >= beatInterval * 0.9 } ?? true
            if due { try beat(now: now) }
            let live = try liveWorkers(now: now)
            let mine = all.filter { Self.owner(of: $0, among: live) == workerId }
            let changed = state.withLock {
                let changed = live != $0.lastLive
                $0.lastLive = live
                $0.lastAssignment = mine
                return changed
            }
            if changed {
                logger.notice(
                    "workers changed",
                    metadata: [
                        "live": "\(live.count)", "workers": "\(live.joined(separator: ","))",
                        "mine": "\(mine.joined(separator: ","))",
                    ])
            }
            return mine
        } catch {
            let fallback = state.withLock { $0.lastAssignment } ?? all
            logger.warning(
                "could not read the workers' heartbeats; keeping the last assignment",
                metadata: ["error": "\(error)"])
            return fallback
        }
    }

    /// Removes this worker's heartbeat (a clean stop), so its collections move at once.
    public func leave() {
        let current = state.withLock { $0.etag }
        guard let current else { return }
        let key = layout.heartbeatKey(worker: workerId)
        do {
            if let info = try store.head(key), info.etag == current { try store.delete(key) }
        } catch {
            logger.warning("could not remove the heartbeat", metadata: ["error": "\(error)"])
        }
    }

    /// Rendezvous hashing: the worker with the highest score for the collection. Stable: a worker
    /// joining or leaving moves only the collections it wins or held.
    public static func owner(of collection: String, among workers: [String]) -> String? {
        workers.max { a, b in
            let (sa, sb) = (score(a, collection), score(b, collection))
            return sa != sb ? sa < sb : a < b
        }
    }

    /// FNV-1a over "worker\0collection", then a SplitMix64 finalizer (well mixed, the same on
    /// every machine and build, unlike Swift's seeded Hasher).
    static func score(_ worker: String, _ collection: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in worker.utf8 + [0] + collection.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01b3
        }
        h ^= h >> 30
        h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 27
        h = h &* 0x94d0_49bb_1331_11eb
        h ^= h >> 31
        return h
    }
}
