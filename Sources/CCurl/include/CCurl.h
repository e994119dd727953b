#ifndef LIFEBOAT_CCURL_H
#define LIFEBOAT_CCURL_H

#include <curl/curl.h>

// Swift cannot call C variadic functions, and curl_easy_setopt / curl_easy_getinfo are
// variadic. Each wrapper below fixes the type of the third argument, so the Swift side
// picks the one that matches the option's documented type. All of them return the
// CURLcode of the underlying call unchanged.

CURLcode lifeboat_curl_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode lifeboat_curl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode lifeboat_curl_easy_setopt_ptr(CURL *handle, CURLoption option, void *value);
CURLcode lifeboat_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode lifeboat_curl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);

/// Callbacks have function-pointer type; a data pointer cannot carry them portably.
typedef size_t (*lifeboat_curl_io_callback)(char *buffer, size_t size, size_t nitems, void *userdata);
CURLcode lifeboat_curl_easy_setopt_io_callback(CURL *handle, CURLoption option, lifeboat_curl_io_callback callback);

/// The seek callback (CURLOPT_SEEKFUNCTION) has its own function-pointer type, different from
/// the I/O callbacks': libcurl calls it to rewind an upload body before sending it again
/// (a reused connection that turned out dead, a redirect, an authentication round).
CURLcode lifeboat_curl_easy_setopt_seek_callback(CURL *handle, CURLoption option, curl_seek_callback callback);

/// The transfer-information callback (CURLOPT_XFERINFOFUNCTION) has a function-pointer type
/// of its own again (four curl_off_t counters, an int result): libcurl calls it while a
/// transfer runs, also when no byte moves, and a non-zero result aborts the transfer with
/// CURLE_ABORTED_BY_CALLBACK. That is how a cancelled run stops its transfers.
CURLcode lifeboat_curl_easy_setopt_xferinfo_callback(CURL *handle, CURLoption option, curl_xferinfo_callback callback);

CURLcode lifeboat_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode lifeboat_curl_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value);
CURLcode lifeboat_curl_easy_getinfo_double(CURL *handle, CURLINFO info, double *value);
CURLcode lifeboat_curl_easy_getinfo_string(CURL *handle, CURLINFO info, const char **value);

/// The symbolic name of a CURLcode ("CURLE_COULDNT_CONNECT"), for error messages and logs:
/// curl_easy_strerror gives only prose, and the names live in the C header alone. Returns
/// "CURLE_UNKNOWN" for a code this libcurl's header does not name.
const char *lifeboat_curl_code_name(CURLcode code);

#endif
