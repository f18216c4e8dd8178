/*
 * rlm_mfa: the header bindgen reads (build.rs).
 *
 * Only the project's own declarations live here. The FreeRADIUS headers come
 * from the system's libfreeradius-dev; the eight that Debian leaves out are
 * taken from Debian's source package of the same version at set-up time
 * (scripts/setup.sh) and never committed.
 */
#ifndef RLM_MFA_WRAPPER_H
#define RLM_MFA_WRAPPER_H

/* radiusd.h uses RCSIDH before it includes anything that defines it. */
#include <freeradius/build.h>
#include <freeradius/radiusd.h>
#include <freeradius/modules.h>

/*
 * RLM_MODULE_INIT is built by token pasting, which bindgen cannot evaluate;
 * an enumerator gives it the value. The loader refuses a module whose magic
 * differs from the server's, so this ties the build to these headers.
 */
enum rlm_mfa_abi {
	RLM_MFA_MODULE_INIT = RLM_MODULE_INIT
};

#endif
