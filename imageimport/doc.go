// Package imageimport turns container images found on disk or in a
// registry into verified local layer files, uploads them to an Ouroboros
// server, and builds the starter busybox image.
//
//	source ──Load──▶ Image{Layers: files in workDir} ──Upload──▶ /v1/blobs + Image object
//
// Load understands, in this order:
//
//  1. a directory holding an OCI image layout (oci-layout and index.json),
//  2. a tar file of such a layout (as "skopeo copy … oci-archive:" writes),
//  3. a "docker save" tar (manifest.json at the top; legacy or OCI flavour),
//  4. a plain root filesystem tarball, plain or gzip-compressed,
//  5. otherwise a registry reference such as "docker.io/library/alpine:3.20".
//
// Every layer is copied into workDir while it is hashed and its (decompressed)
// tar stream is walked to the end, so a corrupt or truncated layer is caught
// before anything is uploaded. Nothing read from a source ever reaches a
// shell; paths inside archives are only opened as files.
//
// LoadSource, behind `ouro image import`, adds virtual machine images: it
// downloads http(s) URLs (streamed to workDir while hashed, checked against
// Content-Length and an optional SHA-256), recognises qcow2 disks by their
// header and raw disks by --format raw or their name, checks a qcow2 file's
// tables against its size so a truncated file is refused, and reads kernels
// and initrds given with --kernel and --initrd. Other sources go to Load.
package imageimport
