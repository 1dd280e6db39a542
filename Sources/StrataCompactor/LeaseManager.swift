import Foundation
import Logging
import StrataCore

#if canImport(Glibc)
    import Glibc
#endif

/// A best-effort claim on a collection so that several workers do not merge the same runs at the
/// same time. It only saves work: the pointer's conditional write keeps the result correct even
/// when two compactors both believe they hold the lease (clocks disagree, a lease expired while
/// its holder was paused).
struct LeaseManager {
    let store: any ObjectStore
    let layout: Layout
    let settings: CompactorSettings
    let logger: Logger

    enum Outcome {
        case acquired(etag: String)
        case heldByOther(Lease)
    }

    func acquire(collection: String, now: Date = Date()) throws -> Outcome {
        let key = layout.leaseKey(collection)
        let mine = Lease(
            owner: settings.compactorId, host: settings.host, pid: getpid(), acquiredAt: now,
            expiresAt: now.addingTimeInterval(settings.leaseDuration))
        let body = try StrataJSON.encoder().encode(mine)
        do {
            if let (data, info) = try store.getDataIfExists(key) {
                let current = try? StrataJSON.decode(Lease.self, from: data, object: key)
                if let current, current.owner != settings.compactorId, current.expiresAt > now,
                    !ownerIsGone(current)
                {
                    return .heldByOther(current)
                }
                // Ours, expired, or unreadable: take it over, but only if nobody changed it meanwhile.
                let put = try store.put(key, data: body, condition: .ifMatch(info.etag))
                return .acquired(etag: put.etag)
            }
            let put = try store.put(key, data: body, condition: .ifNoneMatch)
            return .acquired(etag: put.etag)
        } catch let e as StoreError where e.kind == .preconditionFailed || e.kind == .notFound {
            // Someone else took it between our read and our write.
            if let (data, _) = try store.getDataIfExists(key),
                let current = try? StrataJSON.decode(Lease.self, from: data, object: key)
            {
                return .heldByOther(current)
            }
            return try acquire(collection: collection, now: now)
        }
    }

    /// A lease taken on this host by a process that no longer exists.
    func ownerIsGone(_ lease: Lease) -> Bool {
        guard lease.host == settings.host, let pid = lease.pid, pid > 0, pid != getpid() else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    /// Extends a lease we hold when a third of it has passed. Returns the lease's current ETag.
    /// Losing it is not an error: the pointer's conditional write keeps the result correct.
    func renew(collection: String, etag: String, acquiredAt: inout Date, now: Date = Date()) -> String {
        guard now.timeIntervalSince(acquiredAt) > settings.leaseDuration / 3 else { return etag }
        let mine = Lease(
            owner: settings.compactorId, host: settings.host, pid: getpid(), acquiredAt: now,
            expiresAt: now.addingTimeInterval(settings.leaseDuration))
        do {
            let put = try store.put(
                layout.leaseKey(collection), data: try StrataJSON.encoder().encode(mine),
                condition: .ifMatch(etag))
            acquiredAt = now
            return put.etag
        } catch {
            logger.notice("could not renew the lease", metadata: ["collection": "\(collection)", "error": "\(error)"])
            return etag
        }
    }

    /// Removes the lease if it is still ours.
    func release(collection: String, etag: String) {
        let key = layout.leaseKey(collection)
        do {
            if let info = try store.head(key), info.etag == etag { try store.delete(key) }
        } catch {
            logger.warning(
                "could not release the lease", metadata: ["collection": "\(collection)", "error": "\(error)"])
        }
    }
}
