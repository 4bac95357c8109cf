/*
 * Unit tests for the COLO chardev frame reader (net/colo-frame.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/units.h"
#include "net/colo-frame.h"

typedef struct Frame {
    GByteArray *data;
    uint32_t vnet_hdr_len;
} Frame;

typedef struct Sink {
    GPtrArray *frames;      /* of Frame */
    ColoFrameReader *r;
    size_t max_buf_size;    /* largest reader buffer seen at delivery */
} Sink;

static void frame_free(gpointer p)
{
    Frame *f = p;

    g_byte_array_unref(f->data);
    g_free(f);
}

static void sink_init(Sink *s, ColoFrameReader *r)
{
    s->frames = g_ptr_array_new_with_free_func(frame_free);
    s->r = r;
    s->max_buf_size = 0;
}

static void sink_fn(void *opaque, const uint8_t *buf, size_t len,
                    uint32_t vnet_hdr_len)
{
    Sink *s = opaque;
    Frame *f = g_new0(Frame, 1);

    g_assert_cmpuint(len, >, 0);
    g_assert_cmpuint(len, <=, COLO_FRAME_MAX_LEN);
    g_assert_cmpuint(vnet_hdr_len, <=, len);
    f->data = g_byte_array_new();
    g_byte_array_append(f->data, buf, len);
    f->vnet_hdr_len = vnet_hdr_len;
    g_ptr_array_add(s->frames, f);
}

static Frame *sink_frame(Sink *s, guint i)
{
    g_assert_cmpuint(i, <, s->frames->len);
    return g_ptr_array_index(s->frames, i);
}

/* Append one frame to @stream; the payload is @len bytes of @fill + i. */
static void put_frame(GByteArray *stream, bool vnet, uint32_t len,
                      uint32_t vnet_hdr_len, uint8_t fill)
{
    uint8_t word[4];
    uint32_t i;

    stl_be_p(word, len);
    g_byte_array_append(stream, word, 4);
    if (vnet) {
        stl_be_p(word, vnet_hdr_len);
        g_byte_array_append(stream, word, 4);
    }
    for (i = 0; i < len; i++) {
        uint8_t b = fill + i;
        g_byte_array_append(stream, &b, 1);
    }
}

static void put_word(GByteArray *stream, uint32_t value)
{
    uint8_t word[4];

    stl_be_p(word, value);
    g_byte_array_append(stream, word, 4);
}

static void check_frame(Sink *s, guint i, uint32_t len,
                        uint32_t vnet_hdr_len, uint8_t fill)
{
    Frame *f = sink_frame(s, i);
    uint32_t j;

    g_assert_cmpuint(f->data->len, ==, len);
    g_assert_cmpuint(f->vnet_hdr_len, ==, vnet_hdr_len);
    for (j = 0; j < len; j++) {
        g_assert_cmpuint(f->data->data[j], ==, (uint8_t)(fill + j));
    }
}

/* The three frames of build_stream(), checked after any way of feeding. */
static const uint32_t stream_lens[] = { 1, 60, 1514 };
static const uint32_t stream_vnet[] = { 0, 10, 12 };

static GByteArray *build_stream(bool vnet)
{
    GByteArray *stream = g_byte_array_new();
    int i;

    for (i = 0; i < ARRAY_SIZE(stream_lens); i++) {
        put_frame(stream, vnet, stream_lens[i], vnet ? stream_vnet[i] : 0,
                  0x10 * i);
    }
    return stream;
}

static void check_stream(Sink *s, bool vnet)
{
    int i;

    g_assert_cmpuint(s->frames->len, ==, ARRAY_SIZE(stream_lens));
    for (i = 0; i < ARRAY_SIZE(stream_lens); i++) {
        check_frame(s, i, stream_lens[i], vnet ? stream_vnet[i] : 0,
                    0x10 * i);
    }
    g_assert_cmpuint(s->r->stats.frames, ==, ARRAY_SIZE(stream_lens));
    g_assert_cmpuint(s->r->stats.bytes, ==, 1 + 60 + 1514);
    g_assert_cmpuint(s->r->stats.bad_frames, ==, 0);
}

static void test_whole_stream(gconstpointer opaque)
{
    bool vnet = GPOINTER_TO_INT(opaque);
    g_autoptr(GByteArray) stream = build_stream(vnet);
    ColoFrameReader r;
    Sink s;

    colo_frame_reader_init(&r, vnet);
    sink_init(&s, &r);
    colo_frame_reader_feed(&r, stream->data, stream->len, sink_fn, &s);
    check_stream(&s, vnet);
    g_ptr_array_unref(s.frames);
    colo_frame_reader_destroy(&r);
}

/* Two feeds, split at every byte boundary of the stream. */
static void test_split_everywhere(gconstpointer opaque)
{
    bool vnet = GPOINTER_TO_INT(opaque);
    g_autoptr(GByteArray) stream = build_stream(vnet);
    guint cut;

    for (cut = 0; cut <= stream->len; cut++) {
        ColoFrameReader r;
        Sink s;

        colo_frame_reader_init(&r, vnet);
        sink_init(&s, &r);
        colo_frame_reader_feed(&r, stream->data, cut, sink_fn, &s);
        colo_frame_reader_feed(&r, stream->data + cut, stream->len - cut,
                               sink_fn, &s);
        check_stream(&s, vnet);
        g_ptr_array_unref(s.frames);
        colo_frame_reader_destroy(&r);
    }
}

static void test_byte_by_byte(gconstpointer opaque)
{
    bool vnet = GPOINTER_TO_INT(opaque);
    g_autoptr(GByteArray) stream = build_stream(vnet);
    ColoFrameReader r;
    Sink s;
    guint i;

    colo_frame_reader_init(&r, vnet);
    sink_init(&s, &r);
    for (i = 0; i < stream->len; i++) {
        colo_frame_reader_feed(&r, stream->data + i, 1, sink_fn, &s);
    }
    check_stream(&s, vnet);
    /* A frame never fits in one byte, so each one was assembled. */
    g_assert_cmpuint(r.buf_size, ==, 1514);
    g_ptr_array_unref(s.frames);
    colo_frame_reader_destroy(&r);
}

/* Feed @stream whole and return the sink; the caller checks and frees. */
static void feed_all(ColoFrameReader *r, Sink *s, bool vnet,
                     GByteArray *stream)
{
    colo_frame_reader_init(r, vnet);
    sink_init(s, r);
    colo_frame_reader_feed(r, stream->data, stream->len, sink_fn, s);
}

static void finish(ColoFrameReader *r, Sink *s)
{
    g_ptr_array_unref(s->frames);
    colo_frame_reader_destroy(r);
}

static void test_zero_length(void)
{
    g_autoptr(GByteArray) stream = g_byte_array_new();
    ColoFrameReader r;
    Sink s;

    put_word(stream, 0);
    put_frame(stream, false, 5, 0, 0x40);
    feed_all(&r, &s, false, stream);
    g_assert_cmpuint(r.stats.bad_frames, ==, 1);
    g_assert_cmpuint(s.frames->len, ==, 1);
    check_frame(&s, 0, 5, 0, 0x40);
    finish(&r, &s);
}

static void test_too_long(void)
{
    g_autoptr(GByteArray) stream = g_byte_array_new();
    ColoFrameReader r;
    Sink s;

    put_word(stream, COLO_FRAME_MAX_LEN + 1);
    put_word(stream, UINT32_MAX);
    put_frame(stream, false, 7, 0, 0x50);
    feed_all(&r, &s, false, stream);
    g_assert_cmpuint(r.stats.bad_frames, ==, 2);
    g_assert_cmpuint(s.frames->len, ==, 1);
    check_frame(&s, 0, 7, 0, 0x50);
    /* The bad lengths were never allocated. */
    g_assert_cmpuint(r.buf_size, ==, 0);
    finish(&r, &s);
}

static void test_max_length(void)
{
    g_autoptr(GByteArray) stream = g_byte_array_new();
    ColoFrameReader r;
    Sink s;

    put_frame(stream, true, COLO_FRAME_MAX_LEN, 12, 0x60);
    colo_frame_reader_init(&r, true);
    sink_init(&s, &r);
    /* Split so the payload is assembled in the reader's own buffer. */
    colo_frame_reader_feed(&r, stream->data, 100, sink_fn, &s);
    colo_frame_reader_feed(&r, stream->data + 100, stream->len - 100,
                           sink_fn, &s);
    g_assert_cmpuint(r.stats.bad_frames, ==, 0);
    g_assert_cmpuint(s.frames->len, ==, 1);
    check_frame(&s, 0, COLO_FRAME_MAX_LEN, 12, 0x60);
    g_assert_cmpuint(r.buf_size, ==, COLO_FRAME_MAX_LEN);
    finish(&r, &s);
}

static void test_vnet_longer_than_frame(void)
{
    g_autoptr(GByteArray) stream = g_byte_array_new();
    ColoFrameReader r;
    Sink s;

    /* Header says 10 bytes of payload, 11 of them vnet header: refused. */
    put_word(stream, 10);
    put_word(stream, 11);
    put_frame(stream, true, 12, 12, 0x70);   /* header only: allowed */
    put_frame(stream, true, 20, 10, 0x80);
    feed_all(&r, &s, true, stream);
    g_assert_cmpuint(r.stats.bad_frames, ==, 1);
    g_assert_cmpuint(s.frames->len, ==, 2);
    check_frame(&s, 0, 12, 12, 0x70);
    check_frame(&s, 1, 20, 10, 0x80);
    finish(&r, &s);
}

/* Without vnet_hdr_support the second word is payload, not a header. */
static void test_vnet_off_ignores_second_word(void)
{
    g_autoptr(GByteArray) stream = g_byte_array_new();
    ColoFrameReader r;
    Sink s;

    put_word(stream, 8);
    put_word(stream, 100);
    put_word(stream, 0xdeadbeef);
    feed_all(&r, &s, false, stream);
    g_assert_cmpuint(r.stats.bad_frames, ==, 0);
    g_assert_cmpuint(s.frames->len, ==, 1);
    g_assert_cmpuint(sink_frame(&s, 0)->vnet_hdr_len, ==, 0);
    g_assert_cmpuint(ldl_be_p(sink_frame(&s, 0)->data->data), ==, 100);
    finish(&r, &s);
}

static void test_reset_drops_partial(void)
{
    g_autoptr(GByteArray) stream = g_byte_array_new();
    g_autoptr(GByteArray) next = g_byte_array_new();
    ColoFrameReader r;
    Sink s;

    put_frame(stream, true, 100, 0, 0x11);
    put_frame(next, true, 3, 1, 0x22);
    colo_frame_reader_init(&r, true);
    sink_init(&s, &r);
    colo_frame_reader_feed(&r, stream->data, 50, sink_fn, &s);
    colo_frame_reader_reset(&r);
    colo_frame_reader_feed(&r, next->data, next->len, sink_fn, &s);
    g_assert_cmpuint(s.frames->len, ==, 1);
    check_frame(&s, 0, 3, 1, 0x22);
    /* Reset in the middle of a length word too. */
    colo_frame_reader_feed(&r, next->data, 2, sink_fn, &s);
    colo_frame_reader_reset(&r);
    colo_frame_reader_feed(&r, next->data, next->len, sink_fn, &s);
    g_assert_cmpuint(s.frames->len, ==, 2);
    check_frame(&s, 1, 3, 1, 0x22);
    g_assert_cmpuint(r.stats.bad_frames, ==, 0);
    finish(&r, &s);
}

/*
 * Random bytes in random slices: no crash, every delivered frame within
 * bounds (sink_fn asserts), the buffer never above COLO_FRAME_MAX_LEN, and
 * the counters consistent with what was fed.
 */
static void test_garbage(gconstpointer opaque)
{
    bool vnet = GPOINTER_TO_INT(opaque);
    g_autoptr(GRand) rand = g_rand_new_with_seed(0xc010);
    size_t total = 4 * MiB, fed = 0;
    uint8_t *buf = g_malloc(8192);
    ColoFrameReader r;
    Sink s;

    colo_frame_reader_init(&r, vnet);
    sink_init(&s, &r);
    while (fed < total) {
        size_t n = g_rand_int_range(rand, 1, 8192);
        size_t i;

        for (i = 0; i < n; i++) {
            buf[i] = g_rand_int(rand);
            /* Small lengths now and then, so some frames get through. */
            if (g_rand_int_range(rand, 0, 4) == 0) {
                buf[i] = 0;
            }
        }
        colo_frame_reader_feed(&r, buf, n, sink_fn, &s);
        g_assert_cmpuint(r.buf_size, <=, COLO_FRAME_MAX_LEN);
        fed += n;
        /* Keep memory flat: only the counts matter here. */
        g_ptr_array_set_size(s.frames, 0);
    }
    g_assert_cmpuint(r.stats.bad_frames, >, 0);
    g_assert_cmpuint(r.stats.frames, >, 0);
    g_assert_cmpuint(r.stats.bytes, <=, fed);
    g_assert_cmpuint(r.stats.frames * (vnet ? 9 : 5), <=, fed);
    g_free(buf);
    finish(&r, &s);
}

/* After garbage, a reset and a valid stream parse exactly. */
static void test_garbage_then_reset(void)
{
    g_autoptr(GByteArray) stream = build_stream(true);
    uint8_t junk[37];
    ColoFrameReader r;
    Sink s;

    memset(junk, 0x5a, sizeof(junk));
    colo_frame_reader_init(&r, true);
    sink_init(&s, &r);
    colo_frame_reader_feed(&r, junk, sizeof(junk), sink_fn, &s);
    g_assert_cmpuint(r.stats.bad_frames, >, 0);
    g_assert_cmpuint(s.frames->len, ==, 0);
    r.stats.bad_frames = 0;
    colo_frame_reader_reset(&r);
    colo_frame_reader_feed(&r, stream->data, stream->len, sink_fn, &s);
    check_stream(&s, true);
    finish(&r, &s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_data_func("/colo/frame/whole/plain", GINT_TO_POINTER(0),
                         test_whole_stream);
    g_test_add_data_func("/colo/frame/whole/vnet", GINT_TO_POINTER(1),
                         test_whole_stream);
    g_test_add_data_func("/colo/frame/split/plain", GINT_TO_POINTER(0),
                         test_split_everywhere);
    g_test_add_data_func("/colo/frame/split/vnet", GINT_TO_POINTER(1),
                         test_split_everywhere);
    g_test_add_data_func("/colo/frame/bytewise/plain", GINT_TO_POINTER(0),
                         test_byte_by_byte);
    g_test_add_data_func("/colo/frame/bytewise/vnet", GINT_TO_POINTER(1),
                         test_byte_by_byte);
    g_test_add_func("/colo/frame/error/zero-length", test_zero_length);
    g_test_add_func("/colo/frame/error/too-long", test_too_long);
    g_test_add_func("/colo/frame/max-length", test_max_length);
    g_test_add_func("/colo/frame/error/vnet-longer-than-frame",
                    test_vnet_longer_than_frame);
    g_test_add_func("/colo/frame/vnet-off", test_vnet_off_ignores_second_word);
    g_test_add_func("/colo/frame/reset", test_reset_drops_partial);
    g_test_add_data_func("/colo/frame/garbage/plain", GINT_TO_POINTER(0),
                         test_garbage);
    g_test_add_data_func("/colo/frame/garbage/vnet", GINT_TO_POINTER(1),
                         test_garbage);
    g_test_add_func("/colo/frame/garbage-then-reset", test_garbage_then_reset);
    return g_test_run();
}
