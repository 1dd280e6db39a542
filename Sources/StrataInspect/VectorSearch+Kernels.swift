// The scoring loops. Rows are read straight from SQLite's buffer, which has no alignment
// guarantee, hence `loadUnaligned`; the stored format is little-endian, which is what every
// platform Strata builds for (x86_64, arm64) uses natively.
#if _endian(big)
    #error("VectorKernels read float32 little-endian BLOBs in place; add a byte-swapping path for big-endian hosts")
#endif

/// SIMD kernels over `n` floats: `q` is the (aligned) query, `x` a row's raw bytes. Lanes of 16,
/// then one of 8, then a scalar tail, so any dimension works. Products are added, not fused:
/// without `-mfma` (the x86_64 baseline) a fused multiply-add would be a libm call per lane.
enum VectorKernels {
    @inline(__always)
    static func dot(_ q: UnsafePointer<Float>, _ x: UnsafeRawPointer, _ n: Int) -> Float {
        let qr = UnsafeRawPointer(q)
        var acc16 = SIMD16<Float>()
        var i = 0
        while i + 16 <= n {
            acc16 +=
                qr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                * x.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        var acc8 = SIMD8<Float>()
        if i + 8 <= n {
            acc8 =
                qr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * x.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var s = acc16.sum() + acc8.sum()
        while i < n {
            s += q[i] * x.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
            i += 1
        }
        return s
    }

    /// The dot product with `q` and the squared norm of `x`, in one pass over `x`.
    @inline(__always)
    static func dotAndNorm(_ q: UnsafePointer<Float>, _ x: UnsafeRawPointer, _ n: Int) -> (dot: Float, norm2: Float) {
        let qr = UnsafeRawPointer(q)
        var d16 = SIMD16<Float>()
        var n16 = SIMD16<Float>()
        var i = 0
        while i + 16 <= n {
            let b = x.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            d16 += qr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * b
            n16 += b * b
            i += 16
        }
        var d8 = SIMD8<Float>()
        var n8 = SIMD8<Float>()
        if i + 8 <= n {
            let b = x.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            d8 = qr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) * b
            n8 = b * b
            i += 8
        }
        var d = d16.sum() + d8.sum()
        var m = n16.sum() + n8.sum()
        while i < n {
            let b = x.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
            d += q[i] * b
            m += b * b
            i += 1
        }
        return (d, m)
    }

    @inline(__always)
    static func l2Squared(_ q: UnsafePointer<Float>, _ x: UnsafeRawPointer, _ n: Int) -> Float {
        let qr = UnsafeRawPointer(q)
        var acc16 = SIMD16<Float>()
        var i = 0
        while i + 16 <= n {
            let d =
                qr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                - x.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            acc16 += d * d
            i += 16
        }
        var acc8 = SIMD8<Float>()
        if i + 8 <= n {
            let d =
                qr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                - x.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc8 = d * d
            i += 8
        }
        var s = acc16.sum() + acc8.sum()
        while i < n {
            let d = q[i] - x.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
            s += d * d
            i += 1
        }
        return s
    }
}
