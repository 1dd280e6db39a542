// Typed wrappers around libcurl's variadic setopt/getinfo, which Swift cannot call directly.
// One wrapper per argument type; names are prefixed so they never collide with libcurl's.
#ifndef STRATA_CCURL_SHIM_H
#define STRATA_CCURL_SHIM_H
#include <curl/curl.h>

typedef size_t (*strata_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef int (*strata_curl_seek_cb)(void *userdata, curl_off_t offset, int origin);

static inline CURLcode strata_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode strata_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode strata_curl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode strata_curl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode strata_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode strata_curl_setopt_data_cb(CURL *h, CURLoption o, strata_curl_data_cb v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode strata_curl_setopt_seek_cb(CURL *h, CURLoption o, strata_curl_seek_cb v) { return curl_easy_setopt(h, o, v); }

static inline CURLcode strata_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }

#endif
