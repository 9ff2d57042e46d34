//! `DbTs`: how a [`UtcTs`] is stored. INTEGER microseconds on SQLite (text would sort wrongly),
//! `timestamptz` on PostgreSQL. The domain crate stays free of sqlx, so the impls live here.

use kapstone_domain::UtcTs;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DbTs(pub UtcTs);

impl From<UtcTs> for DbTs {
    fn from(t: UtcTs) -> Self {
        Self(t)
    }
}

impl From<DbTs> for UtcTs {
    fn from(t: DbTs) -> Self {
        t.0
    }
}

impl Type<Sqlite> for DbTs {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for DbTs {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode_by_ref(&self.0.unix_micros(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTs {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(UtcTs::from_unix_micros(<i64 as Decode<Sqlite>>::decode(value)?)))
    }
}

impl Type<Postgres> for DbTs {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <OffsetDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DbTs {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<Postgres>>::encode_by_ref(&self.0.to_datetime(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTs {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(UtcTs::from_datetime(<OffsetDateTime as Decode<Postgres>>::decode(value)?)))
    }
}
