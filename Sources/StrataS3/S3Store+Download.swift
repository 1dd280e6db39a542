import Foundation
import StrataCore
import StrataCrypto
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

extension S3Store {
    /// Downloads a large object with `concurrency` parallel ranged GETs written at their offsets
    /// into `fd`, every range pinned to one version with `If-Match`. Then the whole file is hashed
    /// and checked against the recorded SHA-256. Restarts once if the object changes meanwhile.
    func parallelDownload(_ key: String, info first: ObjectInfo, fd: Int32) throws -> ObjectInfo {
        var info = first
        for round in 0..<2 {
            do {
                try downloadRanges(key, info: info, fd: fd)
                break
            } catch let e as StoreError where e.kind == .preconditionFailed && round == 0 {
                // The object was replaced during the download: start over on the new version.
                guard let now = try head(key) else {
                    throw StoreError(
                        .notFound, operation: "GetObject", key: key, status: 404,
                        message: "the object was deleted during the download")
                }
                info = now
            } catch let e as StoreError where e.kind == .preconditionFailed {
                throw StoreError(
                    .transient, operation: "GetObject", key: key, status: e.status, code: e.code,
                    message: "the object kept changing during the download", requestId: e.requestId,
                    hint: "retry when writers are done with it")
            }
        }
        if let expected = info.sha256 {
            let actual = try hashFile(fd: fd, size: info.size, key: key)
            if actual != expected { throw integrityMismatch(key: key, expected: expected, actual: actual) }
        }
        return info
    }

    private func downloadRanges(_ key: String, info: ObjectInfo, fd: Int32) throws {
        guard ftruncate(fd, off_t(info.size)) == 0 else { throw S3Store.ioError("GetObject", key) }
        let chunk = Int64(max(configuration.partSize, 1 << 20))
        let count = Int((info.size + chunk - 1) / chunk)
        let workers = max(1, min(configuration.concurrency, count))
        let work = RangeWork(count: count)
        let group = DispatchGroup()
        var threads: [Thread] = []
        for _ in 0..<workers {
            group.enter()
            threads.append(
                Thread { [self] in
                    defer { group.leave() }
                    while true {
                        guard let i = work.next() else { return }
                        let start = Int64(i) * chunk
                        let end = min(info.size, start + chunk)
                        do {
                            var headers: [(name: String, value: String)] = [("Range", "bytes=\(start)-\(end - 1)")]
                            if !info.etag.isEmpty { headers.append(("If-Match", info.etag)) }
                            let r = try send(
                                Request(
                                    operation: "GetObject", method: "GET", key: key, headers: headers,
                                    sink: { .file(fd: fd, offset: start, hash: false) }))
                            if r.bytesWritten != end - start {
                                throw StoreError(
                                    .integrity, operation: "GetObject", key: key,
                                    message: "range \(start)-\(end - 1): got \(r.bytesWritten) bytes, "
                                        + "expected \(end - start)")
                            }
                        } catch {
                            work.fail(error)
                            return
                        }
                    }
                })
        }
        for thread in threads { thread.start() }
        group.wait()
        if let error = work.firstError { throw error }
    }
}

/// Hands out range indexes to download workers; stops on the first error.
private final class RangeWork: Sendable {
    private let count: Int
    private let state = Mutex<(nextIndex: Int, error: Error?)>((0, nil))

    init(count: Int) { self.count = count }

    func next() -> Int? {
        state.withLock {
            guard $0.error == nil, $0.nextIndex < count else { return nil }
            $0.nextIndex += 1
            return $0.nextIndex - 1
        }
    }

    func fail(_ e: Error) {
        state.withLock { if $0.error == nil { $0.error = e } }
    }

    var firstError: Error? { state.withLock { $0.error } }
}
