# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Hot loops of the peak finder: radial background statistics and connected components.

Everything here walks the frame in C without the GIL. The Python layer (`peaks.py`) turns
the statistics into thresholds and the component sums into peak significances; this module
knows nothing about Poisson tails or tables.
"""

import numpy as np

cimport numpy as cnp
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc, realloc

cnp.import_array()

cdef enum:
    N_COLUMNS = 11

ctypedef fused pixel_t:
    cnp.uint8_t
    cnp.uint16_t
    cnp.uint32_t
    cnp.int16_t
    cnp.int32_t
    cnp.float32_t
    cnp.float64_t


def bin_sums(
    const pixel_t[:, ::1] frame,
    const cnp.int32_t[:, ::1] bin_index,
    const cnp.float64_t[::1] limit,
    double invalid_value,
):
    """Per radial bin: count, sum and sum of squares of the valid pixels below `limit[bin]`.

    A pixel takes part when its bin index is >= 0, it is not NaN, it differs from
    `invalid_value` (the dtype maximum an EIGER writes into gaps and dead pixels) and it is
    below its bin's limit. One call is one pass of the sigma clipping in `peaks.py`.

    Returns:
        (count int64, total float64, square float64) arrays of length len(limit).
    """
    cdef Py_ssize_t rows = frame.shape[0], cols = frame.shape[1], r, c
    cdef Py_ssize_t n_bins = limit.shape[0]
    cdef cnp.ndarray[cnp.float64_t, ndim=1] total_arr = np.zeros(n_bins, np.float64)
    cdef cnp.ndarray[cnp.float64_t, ndim=1] square_arr = np.zeros(n_bins, np.float64)
    cdef cnp.ndarray[cnp.int64_t, ndim=1] count_arr = np.zeros(n_bins, np.int64)
    cdef double[::1] total = total_arr, square = square_arr
    cdef cnp.int64_t[::1] count = count_arr
    cdef int b
    cdef double value
    with nogil:
        for r in range(rows):
            for c in range(cols):
                b = bin_index[r, c]
                if b < 0:
                    continue
                value = <double>frame[r, c]
                if value != value or value == invalid_value or value >= limit[b]:
                    continue
                total[b] += value
                square[b] += value * value
                count[b] += 1
    return count_arr, total_arr, square_arr


def connected_peaks(
    const pixel_t[:, ::1] frame,
    const cnp.int32_t[:, ::1] bin_index,
    const cnp.float64_t[::1] threshold,
    const cnp.float64_t[::1] background,
    const cnp.float64_t[::1] variance,
    double invalid_value,
    int box_radius,
    int min_pixels,
    int max_pixels,
    double min_excess_sigma,
    cnp.int32_t[:, ::1] label,
    cnp.int32_t[::1] scratch,
):
    """Group pixels above their bin's threshold into 8-connected components and integrate.

    A component's integration region is its own pixels plus the (2 * box_radius + 1)^2 box
    around its brightest pixel, so a one-pixel component of a real spot still collects the
    spot's tails (this is what lets the pixel threshold be low). Components with fewer than
    `min_pixels` or more than `max_pixels` pixels, or whose excess over the background is
    below `min_excess_sigma` Gaussian sigmas, are dropped here; the Python layer applies the
    exact test to the survivors.

    `label` (frame-shaped, all zero) and `scratch` (twice the frame size) are work buffers owned by
    the caller and reused between frames; `label` is all zero again on return.

    Returns:
        float64 array (n, 11): max_row, max_col, npix, region_pixels, signal (sum of value
        minus background over the region), observed (sum of values), expected background,
        background variance, centroid row, centroid column, brightest pixel's excess.
    """
    cdef Py_ssize_t rows = frame.shape[0], cols = frame.shape[1]
    cdef Py_ssize_t n_pixels = rows * cols
    # The first half of `scratch` lists the bright pixels, the second is the fill stack.
    cdef cnp.int32_t[::1] bright = scratch[:n_pixels]
    cdef cnp.int32_t[::1] stack = scratch[n_pixels:]
    cdef Py_ssize_t n_bright = 0, i, head, tail, p, q
    cdef Py_ssize_t r, c, rr, cc, r0, c0, best
    cdef int b, k, comp_id = 0, npix, region
    cdef double value, excess, best_excess, weight, sum_w, sum_wr, sum_wc
    cdef double observed, expected, var_sum
    # Results go to a malloc'd table so the whole search runs in one GIL-free block
    # (releasing the GIL per component cost more than the search for noisy frames).
    cdef Py_ssize_t capacity = 256, n_found = 0
    cdef double *found = <double *>malloc(capacity * N_COLUMNS * sizeof(double))
    cdef double *grown
    cdef double *row
    cdef bint out_of_memory = False
    if found == NULL:
        raise MemoryError()

    with nogil:
        for r in range(rows):
            for c in range(cols):
                b = bin_index[r, c]
                if b < 0:
                    continue
                value = <double>frame[r, c]
                if value > threshold[b] and value != invalid_value:
                    label[r, c] = -1
                    bright[n_bright] = <cnp.int32_t>(r * cols + c)
                    n_bright += 1

        for i in range(n_bright):
            p = bright[i]
            if label[p // cols, p % cols] != -1:
                continue
            comp_id += 1
            # Flood fill: the stack doubles as the component's pixel list.
            label[p // cols, p % cols] = comp_id
            stack[0] = <cnp.int32_t>p
            head = 0
            tail = 1
            best = p
            best_excess = -1e300
            while head < tail:
                q = stack[head]
                head += 1
                r = q // cols
                c = q % cols
                excess = <double>frame[r, c] - background[bin_index[r, c]]
                if excess > best_excess:
                    best_excess = excess
                    best = q
                for rr in range(r - 1, r + 2):
                    if rr < 0 or rr >= rows:
                        continue
                    for cc in range(c - 1, c + 2):
                        if cc < 0 or cc >= cols:
                            continue
                        if label[rr, cc] == -1:
                            label[rr, cc] = comp_id
                            stack[tail] = <cnp.int32_t>(rr * cols + cc)
                            tail += 1
            npix = <int>tail
            if npix < min_pixels or npix > max_pixels:
                continue
            observed = 0.0
            expected = 0.0
            var_sum = 0.0
            sum_w = 0.0
            sum_wr = 0.0
            sum_wc = 0.0
            region = 0
            for head in range(tail):
                q = stack[head]
                r = q // cols
                c = q % cols
                b = bin_index[r, c]
                value = <double>frame[r, c]
                observed += value
                expected += background[b]
                var_sum += variance[b]
                weight = value - background[b]
                if weight > 0.0:
                    sum_w += weight
                    sum_wr += weight * r
                    sum_wc += weight * c
                region += 1
            r0 = best // cols
            c0 = best % cols
            for rr in range(r0 - box_radius, r0 + box_radius + 1):
                if rr < 0 or rr >= rows:
                    continue
                for cc in range(c0 - box_radius, c0 + box_radius + 1):
                    if cc < 0 or cc >= cols or label[rr, cc] == comp_id:
                        continue
                    b = bin_index[rr, cc]
                    if b < 0:
                        continue
                    value = <double>frame[rr, cc]
                    if value != value or value == invalid_value:
                        continue
                    observed += value
                    expected += background[b]
                    var_sum += variance[b]
                    weight = value - background[b]
                    if weight > 0.0:
                        sum_w += weight
                        sum_wr += weight * rr
                        sum_wc += weight * cc
                    region += 1
            if var_sum <= 0.0 or (observed - expected) < min_excess_sigma * sqrt(var_sum):
                continue
            if n_found == capacity:
                grown = <double *>realloc(found, 2 * capacity * N_COLUMNS * sizeof(double))
                if grown == NULL:
                    out_of_memory = True
                    break
                found = grown
                capacity *= 2
            row = found + n_found * N_COLUMNS
            row[0] = r0
            row[1] = c0
            row[2] = npix
            row[3] = region
            row[4] = observed - expected
            row[5] = observed
            row[6] = expected
            row[7] = var_sum
            row[8] = sum_wr / sum_w if sum_w > 0.0 else r0
            row[9] = sum_wc / sum_w if sum_w > 0.0 else c0
            row[10] = best_excess
            n_found += 1

        for i in range(n_bright):
            p = bright[i]
            label[p // cols, p % cols] = 0

    table = np.empty((n_found, N_COLUMNS), np.float64)
    cdef double[:, ::1] table_view = table
    for i in range(n_found):
        for k in range(N_COLUMNS):
            table_view[i, k] = found[i * N_COLUMNS + k]
    free(found)
    if out_of_memory:
        raise MemoryError("out of memory while collecting peak candidates")
    return table
