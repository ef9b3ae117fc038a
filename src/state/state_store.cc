// OpenStateStore: the backend the configuration names.
#include "postline/state.h"

namespace postline {

Result<std::shared_ptr<StateStore>> OpenStateStore(const StateStoreOptions& options) {
  if (!options.database_url.empty()) {
    return OpenPostgresStateStore(options.database_url, options.clock, options.on_error,
                                  options.pool_size);
  }
  return OpenSqliteStateStore(options.sqlite_path, options.clock, options.on_error);
}

}  // namespace postline
