import Foundation
import StrataCore
import StrataDelta

#if canImport(Glibc)
    import Glibc
#endif

/// Shared-directory mode (the seed's EFS mode; Docs/FORMATS.md "Shared directory"): each new
/// version, materialized, at `DIR/{collection}/{version}/snapshot.sqlite3` with its
/// `manifest.json`, and `DIR/{collection}/latest`, a small file holding the version id and a
/// newline, replaced by an atomic rename. Readers on that file system open the file with no S3.
///
/// `latest` is a file rather than a symlink: a rename of a regular file is atomic on every POSIX
/// file system and on NFS/EFS, it reads the same from any client, and it needs no symlink
/// support (some mounts and sync tools do not follow or copy links). A reader reads `latest`,
/// then opens `{version}/snapshot.sqlite3`; the newest `keep` versions stay, so a reader that read
/// `latest` just before it moved still finds its file (an open file survives its removal).
public struct PublishDirectory: Sendable {
    public let root: String
    /// Versions kept per collection (at least 2, so a reader between `latest` and its open is safe).
    public let keep: Int

    public init(root: String, keep: Int = 3) {
        self.root = root
        self.keep = max(2, keep)
    }

    public func collectionDirectory(_ c: String) -> String { "\(root)/\(c)" }
    public func latestPath(_ c: String) -> String { "\(collectionDirectory(c))/latest" }
    public func snapshotPath(_ c: String, version: String) -> String {
        "\(collectionDirectory(c))/\(version)/\(SnapshotFormat.fileName)"
    }
    public func manifestPath(_ c: String, version: String) -> String {
        "\(collectionDirectory(c))/\(version)/\(Layout.manifestFileName)"
    }

    /// The version `latest` names; nil when there is none.
    public func latest(_ c: String) throws -> String? {
        guard let data = FileManager.default.contents(atPath: latestPath(c)) else { return nil }
        return try Pointer.parse(data, key: latestPath(c))
    }

    /// Writes version `m` from `file` (a verified materialized file, e.g. the reader cache's),
    /// moves `latest` to it unless `latest` already names a newer version, and keeps the newest
    /// `keep` versions. Idempotent: a version already there is not written again.
    public func publish(_ m: SnapshotManifest, file: String) throws {
        try Layout.validate(collection: m.collection)
        guard Identifiers.isValid(m.version) else {
            throw StrataError(.invalidInput, object: "version \(m.version)", message: "is not a version id")
        }
        let dir = "\(collectionDirectory(m.collection))/\(m.version)"
        try make(dir)
        let target = snapshotPath(m.collection, version: m.version)
        let size = (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? Int64) ?? nil
        if size != m.materializedSize
            || !FileManager.default.fileExists(atPath: manifestPath(m.collection, version: m.version))
        {
            let tmp = "\(dir)/.\(SnapshotFormat.fileName).\(getpid())-\(UUID().uuidString.prefix(8))"
            defer { unlink(tmp) }
            do { try FileManager.default.copyItem(atPath: file, toPath: tmp) } catch {
                throw StrataError(
                    .io, object: tmp, message: "cannot copy \(file): \(error)",
                    fix: "check free space and permissions of \(root)")
            }
            try fsyncPath(tmp)
            try rename(tmp, target)
            try writeAtomically(try StrataJSON.encoder().encode(m), to: manifestPath(m.collection, version: m.version))
            try fsyncPath(dir)
        }
        if let current = try? latest(m.collection), current > m.version {
            // The pointer only moves forward; so does `latest`.
        } else {
            try writeAtomically(Pointer.body(version: m.version), to: latestPath(m.collection))
        }
        try prune(m.collection)
    }

    /// Removes versions beyond the newest `keep` (never the one `latest` names).
    public func prune(_ c: String) throws {
        let current = try? latest(c)
        let fm = FileManager.default
        let versions = ((try? fm.contentsOfDirectory(atPath: collectionDirectory(c))) ?? [])
            .filter { Identifiers.isValid($0) && $0 != "latest" && !$0.hasPrefix(".") }
            .filter { fm.fileExists(atPath: "\(collectionDirectory(c))/\($0)/\(SnapshotFormat.fileName)") }
            .sorted()
        for v in versions.dropLast(keep) where v != current {
            try? fm.removeItem(atPath: "\(collectionDirectory(c))/\(v)")
        }
    }

    /// The file of `version` (default: `latest`'s) and its manifest, for a reader with no S3.
    public func locate(_ c: String, version: String? = nil) throws -> (
        version: String, path: String,
        manifest: SnapshotManifest
    ) {
        guard let v = try version ?? latest(c) else {
            throw StrataError(
                .notFound, object: latestPath(c), message: "no version of \(c) was published here",
                fix: "run the compactor with --publish-dir \(root), or read from the store without --publish-dir")
        }
        let path = snapshotPath(c, version: v)
        let mPath = manifestPath(c, version: v)
        guard FileManager.default.fileExists(atPath: path), let data = FileManager.default.contents(atPath: mPath)
        else {
            throw StrataError(
                .notFound, object: path, message: "version \(v) of \(c) is not in \(root) (kept: the newest \(keep))",
                fix: "read the newest version (no VERSION), or read from the store without --publish-dir")
        }
        let m = try SnapshotManifest.decode(data, key: mPath)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? nil
        guard m.collection == c, m.version == v, size == m.materializedSize else {
            throw StrataError(
                .corrupt, object: path, field: "size",
                message: "is \(size.map(String.init) ?? "unreadable") bytes; its manifest says "
                    + "\(m.materializedSize) for \(m.collection)/\(m.version)",
                fix: "the compactor writes it again on its next round; or read from the store")
        }
        return (v, path, m)
    }

    func make(_ dir: String) throws {
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw StrataError(
                .io, object: dir, message: "cannot create it: \(error)", fix: "check permissions of \(root)")
        }
    }

    func writeAtomically(_ data: Data, to path: String) throws {
        let tmp =
            (path as NSString).deletingLastPathComponent + "/.\((path as NSString).lastPathComponent)."
            + "\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { unlink(tmp) }
        do { try data.write(to: URL(fileURLWithPath: tmp)) } catch {
            throw StrataError(
                .io, object: tmp, message: "cannot write it: \(error)", fix: "check permissions of \(root)")
        }
        try fsyncPath(tmp)
        try rename(tmp, path)
    }

    func fsyncPath(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = fsync(fd)
    }

    func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else {
            throw StrataError(
                .io, object: to, message: "cannot rename \(from) to it: \(String(cString: strerror(errno)))")
        }
    }
}
