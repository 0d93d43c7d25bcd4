"""The image format Hercules reads: AWSTAPE records carrying IBM standard labels.

One name for the whole format; its two layers live apart, the record codec in
``records`` and the labels in ``labels``.
"""

from vtlfabric.tape.labels import LABEL_CODEC as LABEL_CODEC
from vtlfabric.tape.labels import LABEL_SIZE as LABEL_SIZE
from vtlfabric.tape.labels import MAX_CLASSIC_BLKSIZE as MAX_CLASSIC_BLKSIZE
from vtlfabric.tape.labels import MAX_FILE_SEQUENCE as MAX_FILE_SEQUENCE
from vtlfabric.tape.labels import MAX_LABEL_BLOCK_COUNT as MAX_LABEL_BLOCK_COUNT
from vtlfabric.tape.labels import DatasetLabel1 as DatasetLabel1
from vtlfabric.tape.labels import DatasetLabel2 as DatasetLabel2
from vtlfabric.tape.labels import LabelError as LabelError
from vtlfabric.tape.labels import LabelKind as LabelKind
from vtlfabric.tape.labels import Vol1 as Vol1
from vtlfabric.tape.labels import decode_date as decode_date
from vtlfabric.tape.labels import encode_date as encode_date
from vtlfabric.tape.labels import label_id as label_id
from vtlfabric.tape.records import BOR as BOR
from vtlfabric.tape.records import COMPRESSION as COMPRESSION
from vtlfabric.tape.records import EOR as EOR
from vtlfabric.tape.records import HEADER as HEADER
from vtlfabric.tape.records import HEADER_SIZE as HEADER_SIZE
from vtlfabric.tape.records import HERCULES_MIN_CHUNK as HERCULES_MIN_CHUNK
from vtlfabric.tape.records import KNOWN_FLAGS1 as KNOWN_FLAGS1
from vtlfabric.tape.records import MAX_CHUNK as MAX_CHUNK
from vtlfabric.tape.records import TAPEMARK as TAPEMARK
from vtlfabric.tape.records import TAPEMARK_SIZE as TAPEMARK_SIZE
from vtlfabric.tape.records import ChunkHeader as ChunkHeader
from vtlfabric.tape.records import FormatError as FormatError
from vtlfabric.tape.records import Record as Record
from vtlfabric.tape.records import TornRecord as TornRecord
from vtlfabric.tape.records import check_chunk_size as check_chunk_size
from vtlfabric.tape.records import chunk_lengths as chunk_lengths
from vtlfabric.tape.records import encode_block as encode_block
from vtlfabric.tape.records import encode_records as encode_records
from vtlfabric.tape.records import encode_tapemark as encode_tapemark
from vtlfabric.tape.records import encoded_block_size as encoded_block_size
from vtlfabric.tape.records import file_size as file_size
from vtlfabric.tape.records import iter_records as iter_records
from vtlfabric.tape.records import read_record as read_record
