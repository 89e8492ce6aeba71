/* The one version string of the module and the tools (--version, and the
 * module's credit_auth_info metric once it has one). */
#ifndef CA_VERSION_H
#define CA_VERSION_H

#define CA_VERSION "0.14.0"

#endif
