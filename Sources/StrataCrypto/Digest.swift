import COpenSSL
import Foundation

/// A streaming message digest over OpenSSL's EVP interface.
///
/// The `EVP_MD_CTX` is owned by this object alone and freed in `deinit`; it never escapes.
public final class Digest {
    public enum Algorithm: Sendable {
        case sha256, md5
        var evp: OpaquePointer? {
            switch self {
            case .sha256: return EVP_sha256()
            case .md5: return EVP_md5()
            }
        }
    }

    private let ctx: OpaquePointer
    private var finished = false

    public init(_ algorithm: Algorithm = .sha256) {
        guard let ctx = EVP_MD_CTX_new(), EVP_DigestInit_ex(ctx, algorithm.evp, nil) == 1 else {
            fatalError("OpenSSL could not initialise a digest context (out of memory)")
        }
        self.ctx = ctx
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public func update(_ buffer: UnsafeRawBufferPointer) {
        precondition(!finished, "Digest.update after finalize")
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        EVP_DigestUpdate(ctx, base, buffer.count)
    }

    public func update(_ data: Data) { data.withUnsafeBytes { update($0) } }
    public func update(_ string: String) { update(Data(string.utf8)) }
    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public func finalize() -> [UInt8] {
        precondition(!finished, "Digest.finalize called twice")
        finished = true
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var len: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &out, &len)
        return Array(out.prefix(Int(len)))
    }

    public func finalizeHex() -> String { Hex.encode(finalize()) }
}

public enum SHA256 {
    public static func hash(_ data: Data) -> [UInt8] {
        let d = Digest(.sha256)
        d.update(data)
        return d.finalize()
    }
    public static func hex(_ data: Data) -> String { Hex.encode(hash(data)) }
    public static func hex(_ string: String) -> String { hex(Data(string.utf8)) }
    /// SHA-256 of the empty string, the payload hash of a bodiless request.
    public static let emptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// Hash a file in bounded memory. Returns the hex digest and the byte count.
    public static func hexOfFile(atPath path: String, bufferSize: Int = 1 << 20) throws -> (hex: String, size: Int64) {
        guard let fh = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? fh.close() }
        let d = Digest(.sha256)
        var total: Int64 = 0
        while true {
            let chunk = try fh.read(upToCount: bufferSize) ?? Data()
            if chunk.isEmpty { break }
            total += Int64(chunk.count)
            d.update(chunk)
        }
        return (d.finalizeHex(), total)
    }
}

public enum MD5 {
    public static func hash(_ data: Data) -> [UInt8] {
        let d = Digest(.md5)
        d.update(data)
        return d.finalize()
    }
}

public enum HMAC {
    /// HMAC-SHA256 of `message` under `key`.
    public static func sha256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var len: UInt32 = 0
        key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                _ = COpenSSL.HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress, m.count, &out, &len)
            }
        }
        return Array(out.prefix(Int(len)))
    }

    public static func sha256(key: [UInt8], message: String) -> [UInt8] {
        sha256(key: key, message: Array(message.utf8))
    }
}

public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var chars: [UInt8] = []
        chars.reserveCapacity(64)
        for b in bytes {
            chars.append(digits[Int(b >> 4)])
            chars.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: chars, as: UTF8.self)
    }
}

public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        if RAND_bytes(&out, Int32(count)) != 1 {
            // OpenSSL's CSPRNG failing is not recoverable; fall back to the system generator.
            var g = SystemRandomNumberGenerator()
            for i in 0..<count { out[i] = UInt8.random(in: 0...255, using: &g) }
        }
        return out
    }
}
